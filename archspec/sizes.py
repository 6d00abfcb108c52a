"""Symbolic input sizes: `input [3, H, W]`.

A size that is not a number is a `Size`: an exact integer expression in the size variables (H, W),
made of sums, products and floor divisions by whole numbers, kept in one canonical form so that
equal expressions compare equal and print alike (`(H + 1)//2`, `2*(H//2)`, `H*W`). The layers'
shape rules are ordinary integer arithmetic; on Sizes they build these expressions unchanged.

Branches. A rule or a spec that compares sizes (`if out < 1`, torch's ceil-mode correction, a
concat's "same height", `if in_shape[1] >= 17`) takes the branch it takes at a *generic sample*: each
variable stands for a large number with many factors of two (so that strides divide it), a
different one per variable (so that H and W are never confused). Every such comparison is recorded,
with where it was made, as a `Constraint` that holds for the sample. A size for which all the
constraints hold takes the same branches, so the expressions are exact for it; one that breaks a
constraint is refused, naming the layer. `archspec sizes` lists the constraints; `--input` fixes the
variables and checks the network as before.

What a size cannot do raises SizeError (code E410): a layer argument, a parameter count or a
division that needs a number (`linear` after flattening an `H x W` map needs a fixed size).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator, Union

SAMPLE_BASE = 2**12 * 3**2 * 5 * 7  # 1,290,240: divisible by every stride product up to 4096
FACTORS = (1, 11, 13, 17, 19, 23, 29, 31)  # one per variable, so that two variables never look equal


class SizeError(Exception):
    """An operation a symbolic size cannot take; reported as E410 where it happened."""

    code = "E410"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def sample_of(index: int) -> int:
    return SAMPLE_BASE * FACTORS[index % len(FACTORS)] * (1 + index // len(FACTORS))


# ---- the expression: sum of coef * monomial; a monomial is a sorted tuple of atoms --------------

@dataclass(frozen=True, order=True)
class Var:
    name: str
    sample: int = field(compare=False)

    def key(self) -> str:
        return "0" + self.name


@dataclass(frozen=True)
class Floor:
    """inner // k, with inner's coefficients in [0, k) (the rest is taken out in front)."""

    inner: "Size"
    k: int
    text: str | None = field(default=None, compare=False, repr=False)  # its text, once written

    def key(self) -> str:
        return "1" + str(self)

    def __str__(self) -> str:
        if self.text is None:  # monomials sort by their atoms' text: written once, not at every sort
            object.__setattr__(self, "text", _floor_text(self.inner, self.k))
        return self.text


Atom = Union[Var, Floor]
Terms = tuple  # ((monomial, coef), ...) sorted by the monomial's text; monomial () is the constant


class Size:
    """An exact symbolic integer; see the module's docstring. Constant results are plain ints."""

    __slots__ = ("terms", "sample", "_hash", "_text")

    def __init__(self, terms: Terms, sample: int) -> None:
        self.terms = terms
        self.sample = sample
        self._hash = hash(terms)
        self._text: str | None = None

    # -- building ---------------------------------------------------------------------------------
    @staticmethod
    def var(name: str, sample: int) -> "Size":
        return Size((((Var(name, sample),), 1),), sample)

    def variables(self) -> set[str]:
        out: set[str] = set()
        for mono, _ in self.terms:
            for a in mono:
                out |= {a.name} if isinstance(a, Var) else a.inner.variables()
        return out

    def at(self, values: dict[str, int]) -> int:
        """The size for these values of the variables."""
        total = 0
        for mono, c in self.terms:
            v = c
            for a in mono:
                v *= values[a.name] if isinstance(a, Var) else a.inner.at(values) // a.k
            total += v
        return total

    # -- arithmetic ---------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return o
        return _make(_merge(self.terms, _terms(o), 1))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return o
        return _make(_merge(self.terms, _terms(o), -1))

    def __rsub__(self, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return o
        return _make(_merge(_terms(o), self.terms, -1))

    def __neg__(self) -> Any:
        return _make(tuple((m, -c) for m, c in self.terms))

    def __pos__(self) -> "Size":
        return self

    def __mul__(self, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return o
        if isinstance(o, int):
            return _make(tuple((m, c * o) for m, c in self.terms)) if o else 0
        out: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.terms:
                m = tuple(sorted(m1 + m2, key=lambda a: a.key()))
                out[m] = out.get(m, 0) + c1 * c2
        return _make(tuple(out.items()))

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return o
        if not isinstance(o, int):
            raise SizeError(f"cannot divide {self} by {o}: a size can be divided by a number only")
        if o == 0:
            raise ZeroDivisionError("division by zero")
        if o < 0:
            return (-self) // -o
        return _floordiv(self.terms, o)

    def __rfloordiv__(self, other: Any) -> Any:
        raise SizeError(f"cannot divide {other} by the size {self}")

    def __mod__(self, other: Any) -> Any:
        return self - (self // other) * other

    def __rmod__(self, other: Any) -> Any:
        raise SizeError(f"cannot take {other} modulo the size {self}")

    def __truediv__(self, other: Any) -> Any:
        raise SizeError(f"{self} / {other} is not a whole number for every size: use // (or fix the size)")

    __rtruediv__ = __truediv__

    def __pow__(self, other: Any) -> Any:
        if isinstance(other, int) and not isinstance(other, bool) and 0 <= other <= 4:
            out: Any = 1
            for _ in range(other):
                out = out * self
            return out
        raise SizeError(f"cannot raise the size {self} to {other}")

    def __abs__(self) -> Any:
        return self if _decide(">=", self, 0) else -self

    def __ceil__(self) -> "Size":
        return self

    __floor__ = __ceil__
    __trunc__ = __ceil__

    def __round__(self, ndigits: int | None = None) -> "Size":
        return self

    def __int__(self) -> int:
        raise SizeError(f"the size {self} is not a number here: fix the input size (--input) to use it so")

    __index__ = __int__
    __float__ = __int__

    # -- comparisons: decided at the sample, recorded -----------------------------------------------
    def __lt__(self, other: Any) -> bool:
        return _decide("<", self, other)

    def __le__(self, other: Any) -> bool:
        return _decide("<=", self, other)

    def __gt__(self, other: Any) -> bool:
        return _decide(">", self, other)

    def __ge__(self, other: Any) -> bool:
        return _decide(">=", self, other)

    def __eq__(self, other: Any) -> bool:  # type: ignore[override]
        if isinstance(other, Size) and other.terms == self.terms:
            return True
        if _operand(other) is NotImplemented:
            return False
        return _decide("==", self, other)

    def __ne__(self, other: Any) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    def __bool__(self) -> bool:
        return _decide("!=", self, 0)

    def __hash__(self) -> int:
        return self._hash

    # -- text -----------------------------------------------------------------------------------------
    def __str__(self) -> str:
        if self._text is None:
            self._text = _text(self.terms)
        return self._text

    def __repr__(self) -> str:  # as the language writes it (error messages show values with repr)
        return str(self)

    def __format__(self, spec: str) -> str:
        return str(self)


SizeLike = Union[int, Size]


def _operand(v: Any) -> Any:
    if isinstance(v, bool):
        return NotImplemented
    if isinstance(v, (int, Size)):
        return v
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    if isinstance(v, (Fraction, float)):
        raise SizeError(f"cannot mix the size with the non-whole number {v}")
    return NotImplemented


def _terms(v: SizeLike) -> Terms:
    if isinstance(v, Size):
        return v.terms
    return (((), v),) if v else ()


def _merge(a: Terms, b: Terms, sign: int) -> dict:
    out = dict(a)
    for m, c in b:
        out[m] = out.get(m, 0) + sign * c
    return out


def _make(items: Any) -> SizeLike:
    """A Size from {monomial: coefficient}, or the int it is when no variable is left."""
    pairs = [(m, c) for m, c in (items.items() if isinstance(items, dict) else items) if c]
    if all(not m for m, _ in pairs):
        return sum(c for _, c in pairs)
    pairs.sort(key=lambda mc: (-len(mc[0]), tuple(a.key() for a in mc[0])))  # H*W before H before W
    sample = 0
    for m, c in pairs:
        v = c
        for a in m:
            v *= a.sample if isinstance(a, Var) else a.inner.sample // a.k
        sample += v
    return Size(tuple(pairs), sample)


def total(values: Any) -> SizeLike:
    """sum(values) for ints and Sizes, with the terms merged once: a module's MACs and activations are
    sums of many symbolic sizes, and adding them one at a time remade (and sorted) every partial sum."""
    whole = 0
    merged: dict | None = None
    for v in values:
        if isinstance(v, Size):
            if merged is None:
                merged = {}
            for m, c in v.terms:
                merged[m] = merged.get(m, 0) + c
        else:
            whole += v
    if merged is None:
        return whole
    if whole:
        merged[()] = merged.get((), 0) + whole
    return _make(merged)


def _floordiv(terms: Terms, k: int) -> SizeLike:
    """(k*A + B) // k = A + B // k, exactly, for integer A and B: B keeps coefficients in [0, k)."""
    if k == 1:
        return _make(terms)
    outside: dict = {}
    inside: dict = {}
    for m, c in terms:
        q, r = divmod(c, k)
        if q:
            outside[m] = outside.get(m, 0) + q
        if r:
            inside[m] = r
    rest = _make(inside)
    if isinstance(rest, int):  # 0 <= rest < k
        return _make(outside)
    # (X//a + r) // k = (X + r*a) // (a*k): nested floors fold into one
    symbolic = [(m, c) for m, c in rest.terms if m]
    if len(symbolic) == 1 and symbolic[0][1] == 1 and len(symbolic[0][0]) == 1 and \
            isinstance(symbolic[0][0][0], Floor):
        f = symbolic[0][0][0]
        r = sum(c for m, c in rest.terms if not m)
        folded = _floordiv(_terms(f.inner + r * f.k), f.k * k)
        return _make(_merge(_terms(_make(outside)), _terms(folded), 1))
    atom = Floor(rest, k)
    outside[(atom,)] = outside.get((atom,), 0) + 1
    return _make(outside)


# ---- text -----------------------------------------------------------------------------------------

def _text(terms: Terms) -> str:
    parts: list[tuple[int, str]] = []
    for m, c in terms:
        if not m:
            parts.append((c, str(abs(c))))
            continue
        body = "*".join(_atom_text(a, len(m) > 1 or abs(c) != 1) for a in m)
        parts.append((c, body if abs(c) == 1 else f"{abs(c)}*{body}"))
    symbolic = [p for p in parts if not p[1].lstrip("-").isdigit()]
    constant = [p for p in parts if p[1].lstrip("-").isdigit()]
    out = ""
    for c, t in symbolic + constant:  # variables first: `H + 1`, not `1 + H`
        if not out:
            out = t if c > 0 else f"-{t}"
        else:
            out += f" + {t}" if c > 0 else f" - {t}"
    return out


def _atom_text(a: Atom, in_product: bool) -> str:
    if isinstance(a, Var):
        return a.name
    text = str(a)
    return f"({text})" if in_product and not text.startswith("ceil(") else text  # W*(H//2), not W*H//2


def _floor_text(inner: "Size", k: int) -> str:
    constant = sum(c for m, c in inner.terms if not m)
    if constant == k - 1:  # (X + k - 1)//k is ceil(X/k)
        rest = _make(tuple((m, c) for m, c in inner.terms if m))
        return f"ceil({rest}/{k})"
    text = str(inner)
    return f"({text})//{k}" if " " in text else f"{text}//{k}"


# ---- constraints ------------------------------------------------------------------------------------

_OPPOSITE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_TEST = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
         ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


@dataclass(frozen=True)
class Constraint:
    """`left op right` must hold (it does at the sample); `where` is the span of the layer or
    expression that compared, `what` says which (`conv2d`, `concat`, `the spec's if`)."""

    left: Any
    op: str
    right: Any
    where: Any = None
    what: str = ""

    def holds(self, values: dict[str, int]) -> bool:
        return _TEST[self.op](_at(self.left, values), _at(self.right, values))

    def variables(self) -> set[str]:
        return _variables(self.left) | _variables(self.right)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def _at(v: SizeLike, values: dict[str, int]) -> int:
    return v.at(values) if isinstance(v, Size) else v


def _variables(v: SizeLike) -> set[str]:
    return v.variables() if isinstance(v, Size) else set()


def sample(v: Any) -> Any:
    return v.sample if isinstance(v, Size) else v


@dataclass
class Recorder:
    constraints: list[Constraint] = field(default_factory=list)
    seen: set = field(default_factory=set)
    where: Any = None
    what: str = ""
    # every comparison made, repeats included: (key, left, op, right, where, what). An expansion that is
    # reused elsewhere (passes/expand.py) replays its share into the recorder of the network reusing it.
    made: list = field(default_factory=list)

    def replay(self, made: Any) -> None:
        """Record comparisons made under another recorder, as if they were made here, in their order."""
        for key, left, op, right, where, what in made:
            if key not in self.seen:
                self.seen.add(key)
                self.constraints.append(Constraint(left, op, right, where, what))


_RECORDER: ContextVar[Recorder | None] = ContextVar("archspec_size_constraints", default=None)


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    token = _RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        _RECORDER.reset(token)


class site:
    """`with site(span, what):` comparisons made inside are attributed to this span and description.
    A class, not a generator: it wraps every statement and layer of an expansion, so it must be cheap,
    and is nearly free when nothing records (a network whose sizes are all numbers)."""

    __slots__ = ("where", "what", "recorder", "before")

    def __init__(self, where: Any, what: str) -> None:
        self.where, self.what = where, what

    def __enter__(self) -> None:
        r = self.recorder = _RECORDER.get()
        if r is not None:
            self.before = (r.where, r.what)
            r.where, r.what = self.where, self.what

    def __exit__(self, *exc: Any) -> None:
        r = self.recorder
        if r is not None:
            r.where, r.what = self.before


def _decide(op: str, a: Any, b: Any) -> bool:
    bo = b if isinstance(b, float) else _operand(b)
    if bo is NotImplemented:
        raise TypeError(f"cannot compare a size with {type(b).__name__}")
    outcome = _TEST[op](sample(a), sample(bo))
    r = _RECORDER.get()
    if r is not None:
        held = op if outcome else _OPPOSITE[op]
        key = (str(a), held, str(bo))
        r.made.append((key, a, held, bo, r.where, r.what))
        if key not in r.seen:
            r.seen.add(key)
            r.constraints.append(Constraint(a, held, bo, r.where, r.what))
    return outcome


def is_symbolic(v: Any) -> bool:
    if isinstance(v, Size):
        return True
    if isinstance(v, (list, tuple)):
        return any(is_symbolic(x) for x in v)
    if isinstance(v, dict):
        return any(is_symbolic(x) for x in v.values())
    return False


class quiet:
    """`with quiet():` comparisons inside decide at the sample without becoming constraints (receptive
    fields, display). A class, as `site` is: expansion enters one for every layer of a symbolic network."""

    __slots__ = ("token",)

    def __enter__(self) -> None:
        self.token = _RECORDER.set(None)

    def __exit__(self, *exc: Any) -> None:
        _RECORDER.reset(self.token)


# ---- what the constraints allow --------------------------------------------------------------------

@dataclass(frozen=True)
class Allowed:
    """The values of one size variable that every constraint on it alone allows, as found by trying
    each value up to `tried`: at least `low`, and from there those whose remainder modulo `period` is
    in `residues` (`H >= 32 and H % 32 == 0` is low 32, period 32, residues (0,)). `exact` is False
    when the allowed values follow no such pattern within the range tried (the constraints are then
    listed as they are)."""

    name: str
    low: int | None
    period: int
    residues: tuple[int, ...]
    tried: int
    exact: bool

    def __str__(self) -> str:
        n = self.name
        if self.low is None:
            return f"no value of {n} up to {self.tried} is valid"
        parts = [f"{n} >= {self.low}"] if self.low > 1 else []
        if self.period > 1 and len(self.residues) < self.period:
            parts.append(f"{n} % {self.period} {_residues(self.residues)}")
        if not self.exact:
            parts.append(f"(other values up to {self.tried} too; no simple pattern)")
        return " and ".join(parts) or f"any {n} >= 1"

    def values(self, start: int = 1) -> Iterator[int]:
        if self.low is None:
            return
        v = max(self.low, start)
        while v < self.low + (1 << 20):
            if v % self.period in self.residues:
                yield v
            v += 1


def _residues(rs: tuple[int, ...]) -> str:
    if len(rs) == 1:
        return f"== {rs[0]}"
    if list(rs) == list(range(rs[0], rs[-1] + 1)):
        return f"< {rs[-1] + 1}" if rs[0] == 0 else f"in {rs[0]}..{rs[-1]}"
    return "in {" + ", ".join(map(str, rs)) + "}"


def _divisors(v: Any) -> set[int]:
    out: set[int] = set()
    if isinstance(v, Size):
        for mono, _ in v.terms:
            for a in mono:
                if isinstance(a, Floor):
                    out.add(a.k)
                    out |= _divisors(a.inner)
    return out


def allowed(constraints: tuple[Constraint, ...], name: str, samples: dict[str, int]) -> Allowed:
    """What the constraints on `name` alone allow (the others held at their samples)."""
    mine = [c for c in constraints if name in c.variables() and c.variables() <= {name}]
    period = 1
    for c in mine:
        for k in _divisors(c.left) | _divisors(c.right):
            period = period * k // _gcd(period, k)
    tried = min(max(256, 8 * period), 1 << 14)
    values = dict(samples)
    valid = []
    for v in range(1, tried + 1):
        values[name] = v
        if all(c.holds(values) for c in mine):
            valid.append(v)
    if not valid:
        return Allowed(name, None, 1, (0,), tried, False)
    low, step = valid[0], 0
    for v in valid[1:]:
        step = _gcd(step, v - low)
    step = step or 1
    if valid == list(range(low, tried + 1, step)):  # low, then every step-th value
        return Allowed(name, low, step, (low % step,), tried, True)
    residues = tuple(sorted({v % period for v in valid}))
    exact = valid == [v for v in range(low, tried + 1) if v % period in residues]
    return Allowed(name, low, period, residues, tried, exact)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return abs(a)


@dataclass(frozen=True)
class Report:
    """`archspec sizes`: per variable what is allowed, and the constraints that exclude a size."""

    variables: tuple[Allowed, ...]
    binding: tuple[tuple[Constraint, Allowed], ...]  # each constraint that rules a size out, what it allows
    other: tuple[Constraint, ...]  # constraints on several variables together, checked as they are

    def valid(self, values: dict[str, int]) -> list[Constraint]:
        """The constraints these sizes break (none: a valid size)."""
        return [c for c, _ in self.binding if not c.holds(values)] + [c for c in self.other if not c.holds(values)]

    def pick(self, near: int, start: int = 1) -> dict[str, int]:
        """Valid values near `near` (a different one per variable after the first, so H != W)."""
        out: dict[str, int] = {}
        for k, a in enumerate(self.variables):
            gen = a.values(max(start, near))
            v = next(gen)
            for _ in range(k):
                v = next(gen)
            out[a.name] = v
        return out


def report(constraints: tuple[Constraint, ...], names: tuple[str, ...]) -> Report:
    samples = {n: sample_of(i) for i, n in enumerate(names)}
    variables = tuple(allowed(constraints, n, samples) for n in names)
    binding, other = [], []
    for c in constraints:
        vs = c.variables()
        if len(vs) == 1:
            (name,) = vs
            alone = allowed((c,), name, samples)
            if alone.low is None or alone.low > 1 or len(alone.residues) < alone.period or not alone.exact:
                binding.append((c, alone))
        elif vs:
            other.append(c)
    return Report(variables, tuple(binding), tuple(other))


# ---- display under the constraints ------------------------------------------------------------------

def substitute(v: Any, values: dict[str, Any]) -> Any:
    """`v` with variables replaced by ints or Sizes (floors recomputed, so they simplify)."""
    if not isinstance(v, Size):
        return v
    total: Any = 0
    for mono, c in v.terms:
        term: Any = c
        for a in mono:
            term = term * (values.get(a.name, Size.var(a.name, a.sample)) if isinstance(a, Var)
                           else substitute(a.inner, values) // a.k)
        total = total + term
    return total


class Pretty:
    """Writes sizes the way the constraints let a reader see them: where every valid H is a multiple
    of 16, `H//16` is `H/16`, `2*(H//16)` is `H/8` and a sum of such terms is collected (`733888*H*W`).
    Exact for every size the constraints allow; the plain text of a Size is exact for every size."""

    def __init__(self, net: Any) -> None:
        self.scale: dict[str, int] = {}
        self.found: Report | None = None
        if getattr(net, "sizes", ()):
            found = self.found = report(net.constraints, net.sizes)
            for a in found.variables:
                if a.exact and a.low is not None and a.period > 1 and a.residues == (0,):
                    self.scale[a.name] = a.period

    def __call__(self, v: Any) -> str:
        if not isinstance(v, Size) or not self.scale:
            return str(v)
        quotient = {n: Size.var(f"{n}/{m}", sample(Size.var(n, 0)) or m) for n, m in self.scale.items()}
        s = substitute(v, {n: q * self.scale[n] for n, q in quotient.items()})
        if not isinstance(s, Size):
            return str(s)
        return _pretty_terms(s, self.scale)


def _pretty_terms(s: "Size", scale: dict[str, int]) -> str:
    pieces: list[tuple[Fraction, str]] = []
    for mono, c in s.terms:
        plain = all(isinstance(a, Var) and "/" in a.name for a in mono)
        if mono and plain:  # c * (H/16)*(W/16) -> c/256 * H*W
            coef, names = Fraction(c), []
            for a in mono:
                n, m = a.name.split("/")
                coef /= int(m)
                names.append(n)
            body = "*".join(names)
            if coef.denominator == 1:
                pieces.append((coef, body if abs(coef) == 1 else f"{abs(coef.numerator)}*{body}"))
            else:
                num = abs(coef.numerator)
                pieces.append((coef, f"{'' if num == 1 else f'{num}*'}{body}/{coef.denominator}"))
        else:
            text = _text(((mono, c),))
            pieces.append((Fraction(c), text.lstrip("-")))
    out = ""
    for coef, text in pieces:
        if not out:
            out = text if coef > 0 else f"-{text}"
        else:
            out += f" + {text}" if coef > 0 else f" - {text}"
    return out
