"""Low precision: int8, fp16 and bf16 artifacts beside the fp32 ones, each with an accuracy report.

    options.py  the command-line options and their checks (light: imported by every command)
    cpu.py      the processor's features that decide what runs fast (VNNI, AMX, AVX-512 BF16)
    data.py     calibration and evaluation inputs: Fashion-MNIST, .npy, .npz
    int8.py     onnxruntime static quantization (QDQ), and what stays in fp32
    fp16.py     the fp16 ONNX model, fp32 inputs and outputs
    bf16.py     the bf16 channels-last module, exported by torch.export
    report.py   top-1, agreement, per-layer SQNR, and the report as text
    build.py    all of it inside a compile's staging folder, refused whole past the accuracy limit
"""
