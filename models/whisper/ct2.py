"""Reader for CTranslate2 `model.bin` files (binary version 6, WhisperSpec) with numpy only.

Layout (little endian), as written by ctranslate2/specs/model_spec.py:
    u32 binary_version                      (this reader accepts 5 and 6)
    str spec_name                           (str = u16 length incl. trailing NUL, bytes, NUL)
    u32 spec_revision
    u32 n_variables
    n_variables x { str name; u8 rank; u32 dims[rank]; u8 dtype; u32 n_bytes; bytes data }
    u32 n_aliases
    n_aliases x { str alias; str target }
dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
Scalars (rank 0) carry attributes such as `encoder/num_heads`, `decoder/activation`.
Quantized weights (int8/int16) come with a `<name>_scale` float variable: w = q / scale.
"""

import re
import struct

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class CT2Model:
    def __init__(self, spec, revision, binary_version, variables, aliases):
        self.spec = spec
        self.revision = revision
        self.binary_version = binary_version
        self.variables = variables  # name -> np.ndarray (raw dtype)
        self.aliases = aliases  # alias -> target

    def raw(self, name):
        name = self.aliases.get(name, name)
        return self.variables[name]

    def has(self, name):
        return self.aliases.get(name, name) in self.variables

    def f32(self, name):
        """Variable as float32, dequantized if the file stores it as int8/int16."""
        v = self.raw(name)
        if v.dtype in (np.int8, np.int16, np.int32) and self.has(name + "_scale"):
            scale = self.f32(name + "_scale").astype(np.float32)
            if scale.ndim == 1 and v.ndim == 2:
                scale = scale[:, None]
            return (v.astype(np.float32) / scale).astype(np.float32)
        return v.astype(np.float32)

    def scalar(self, name, default=None):
        if not self.has(name):
            return default
        return self.raw(name).reshape(-1)[0].item()


def read(path):
    with open(path, "rb") as fh:
        buf = fh.read()
    pos = 0

    def need(n, what):
        if pos + n > len(buf):
            raise ValueError(f"{path}: truncated: {what} needs bytes up to {pos + n}, the file has {len(buf)} "
                             "(a missing model.bin part?)")

    def take(fmt):
        nonlocal pos
        need(struct.calcsize("<" + fmt), "a header field")
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string():
        nonlocal pos
        n = take("H")
        need(n, "a string")
        raw = buf[pos:pos + n]
        pos += n
        return raw.rstrip(b"\0").decode("utf-8")

    version = take("I")
    if version not in (5, 6):
        raise ValueError(f"{path}: unsupported CTranslate2 binary version {version} (expected 5 or 6)")
    spec = string()
    revision = take("I")
    n_vars = take("I")
    variables = {}
    for _ in range(n_vars):
        name = string()
        rank = take("B")
        shape = [take("I") for _ in range(rank)]
        dtype_id = take("B")
        n_bytes = take("I")
        need(n_bytes, f"variable {name}")
        data = buf[pos:pos + n_bytes]
        pos += n_bytes
        if dtype_id not in DTYPES:
            raise ValueError(f"{path}: variable {name}: unknown dtype id {dtype_id}")
        dt = DTYPES[dtype_id]
        if dt == "bfloat16":
            arr = (np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, dtype=dt)
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{path}: variable {name}: {n_bytes} bytes do not match shape {shape}")
        variables[name] = arr.reshape(shape)
    n_alias = take("I")
    aliases = {}
    for _ in range(n_alias):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        raise ValueError(f"{path}: {len(buf) - pos} trailing bytes after the aliases")
    return CT2Model(spec, revision, version, variables, aliases)


def n_layers(model, side):
    idx = set()
    for name in model.variables:
        m = re.match(rf"{side}/layer_(\d+)/", name)
        if m:
            idx.add(int(m.group(1)))
    if not idx or sorted(idx) != list(range(len(idx))):
        raise ValueError(f"{side}: layer indices {sorted(idx)} are not 0..n-1")
    return len(idx)


def dims(model):
    """All dimensions of a Whisper model, derived from the file."""
    if model.spec != "WhisperSpec":
        raise ValueError(f"spec is {model.spec!r}, expected 'WhisperSpec'")
    conv1 = model.raw("encoder/conv1/weight")
    d_model, n_mels, _ = conv1.shape
    n_audio_ctx, d_audio = model.raw("encoder/position_encodings/encodings").shape
    n_text_ctx, d_text = model.raw("decoder/position_encodings/encodings").shape
    n_vocab, d_emb = model.raw("decoder/embeddings/weight").shape
    if not (d_model == d_audio == d_text == d_emb):
        raise ValueError(f"width mismatch: conv {d_model}, audio pos {d_audio}, text pos {d_text}, emb {d_emb}")
    d = dict(
        n_mels=int(n_mels),
        n_audio_ctx=int(n_audio_ctx),
        n_audio_layer=n_layers(model, "encoder"),
        n_audio_head=int(model.scalar("encoder/num_heads", d_model // 64)),
        n_text_ctx=int(n_text_ctx),
        n_text_layer=n_layers(model, "decoder"),
        n_text_head=int(model.scalar("decoder/num_heads", d_model // 64)),
        n_vocab=int(n_vocab),
        d_model=int(d_model),
    )
    for k in ("n_audio_head", "n_text_head"):
        if d_model % d[k]:
            raise ValueError(f"d_model {d_model} not divisible by {k} {d[k]}")
    act = model.scalar("decoder/activation", 3)
    if act != 3:
        raise ValueError(f"decoder activation id {act}, expected 3 (exact GELU)")
    if not model.scalar("decoder/pre_norm", 1):
        raise ValueError("decoder is not pre-norm")
    if model.scalar("decoder/scale_embeddings", 0):
        raise ValueError("decoder scales embeddings (not Whisper)")
    return d
