"""A minimal GGUF reader for tests: metadata values and rows of an f32 or f16
token_embd tensor (GGUF v2/v3 layout, as written by llama.cpp's gguf and by
core/sw_gguf_writer.c). Only what the tests need; not for production use."""
import struct

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Gguf:
    """Parses the header of the GGUF file at `path`: self.kv (key -> value; arrays
    are lists), self.tensors (name -> (dims, ggml type, absolute offset))."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._b = f.read()
        self._p = 0
        if self._take(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, = self._u("<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version}")
        n_tensors, n_kv = self._u("<Q")[0], self._u("<Q")[0]
        self.kv = {}
        for _ in range(n_kv):
            k = self._str()
            t, = self._u("<I")
            self.kv[k] = self._val(t)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            nd, = self._u("<I")
            dims = [self._u("<Q")[0] for _ in range(nd)]
            t, = self._u("<I")
            off, = self._u("<Q")
            infos.append((name, dims, t, off))
        align = int(self.kv.get("general.alignment", 32))
        base = (self._p + align - 1) // align * align
        self.tensors = {n: (d, t, base + o) for n, d, t, o in infos}

    def _take(self, n):
        b = self._b[self._p:self._p + n]
        self._p += n
        return b

    def _u(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))

    def _str(self):
        n, = self._u("<Q")
        return self._take(n).decode("utf-8", "replace")

    def _val(self, t):
        if t in _SCALAR:
            return self._u(_SCALAR[t])[0]
        if t == 8:
            return self._str()
        if t == 9:
            et, = self._u("<I")
            n, = self._u("<Q")
            return [self._val(et) for _ in range(n)]
        raise ValueError(f"{self.path}: GGUF value type {t}")

    def embedding_row(self, token):
        """Token `token`'s row of token_embd as little-endian f32 bytes (what an
        f32 activation of that token carries), or None when the tensor is
        neither f32 (type 0) nor f16 (type 1)."""
        dims, t, off = self.tensors["token_embd.weight"]
        n_embd = dims[0]
        if t == 0:
            return self._b[off + token * n_embd * 4: off + (token + 1) * n_embd * 4]
        if t == 1:
            raw = self._b[off + token * n_embd * 2: off + (token + 1) * n_embd * 2]
            return struct.pack(f"<{n_embd}f", *struct.unpack(f"<{n_embd}e", raw))
        return None
