#!/usr/bin/env python3
"""Compares swisd's SentencePiece tokenizer with the sentencepiece library.

Usage: tokenizer_ref.py TOK_TOOL [N_RANDOM]
  TOK_TOOL: path of the tests/tok_tool executable (encodes hex lines).
Vocabularies: stories260K's 512 (models/tok512.model against models/tok512.bin
and models/stories260K.gguf, in the repository) and, when $SWISD_TEST_DATA
holds it (tests/data/README.md), the Llama-2 32000 (tokenizer.model against
tokenizer.bin and ggml-vocab-llama-spm.gguf); without it that part is skipped
and said so (a failure under CI=true).
For each fixed and each seeded random string the ids must equal
sentencepiece's (computed now, never stored), and decoding our ids must give
back the text. Needs the Debian package python3-sentencepiece; if it is
missing the test is skipped (exit 77).

tok512.model was trained with remove_extra_whitespaces (sentencepiece strips
leading/trailing spaces and collapses runs of spaces before encoding), which
a GGUF/llama2.c vocabulary does not record; such strings are normalised the
same way before both tokenizers see them.
"""
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

spm = harness.import_or_reexec('sentencepiece', __file__, 'SWISD_TOKREF_REEXEC')
if spm is None:
    print('tokenizer_ref: python3-sentencepiece not installed; skipped')
    sys.exit(77)

FIXED = [
    '', ' ', '  ', '   ', 'a', ' a', 'a ', 'Hello', 'Hello world', 'Hello  world', ' Hello world ',
    'Once upon a time', ' Once upon a time, there was a little girl named Lily.',
    'She loved to play outside in the park. One day, she saw a big, red ball.',
    "I'm here, you're there, they'll go; we've done it. Isn't it?",
    'numbers 0 1 12 123 1234 3.14159 -42 1e10 0x1F',
    'line one\nline two\n\nline four\r\nwindows\ttab\t\ttabs',
    'Ünïcödé café naïve résumé façade', 'Привет, мир!', 'こんにちは世界', '你好，世界',
    '안녕하세요', 'مرحبا بالعالم', 'שלום', 'Γειά σου Κόσμε', 'emoji 😀🎉👍🏽 family 👨‍👩‍👧',
    'math ∑∫√∞ ≠ ≤ ≥', 'punctuation !!! ??? ... --- *** ### @@@ $$$ %%%', '<s> </s> <unk> <0x41>',
    'a\u00a0b', 'trailing spaces   ', '   leading spaces', 'x' * 300, 'the ' * 100,
    'ab' * 50 + ' ' + 'ba' * 50,
]

POOL = (list('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') * 4 +
        list('     ') * 6 + list(".,;:!?'\"-()[]{}<>/\\|@#$%^&*+=_~`") + ['\n', '\t', '\n\n'] +
        list('éüñßøåçàèìòùâêîôûäöÿ') + list('абвгдеёжзийклмнопрстуфхцчшщъыьэюя') +
        list('日本語中文字한국어') + ['😀', '🎉', '👍', '🏽', '\u200d', '€', '£', '¥', '∑', '→'])


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 60)
        s = ''.join(rng.choice(POOL) for _ in range(k))
        if rng.random() < 0.5:  # word-like text, so longer merges happen
            words = [''.join(rng.choice('etaoinshrdlucmfwyp') for _ in range(rng.randint(1, 9)))
                     for _ in range(rng.randint(1, 12))]
            s = ' '.join(words) + s[: rng.randint(0, 10)]
        out.append(s)
    return out


def collapse_spaces(s):
    return ' '.join(w for w in s.split(' ') if w)


def run_tool(tool, vocab, texts):
    data = ''.join(t.encode('utf-8').hex() + '\n' for t in texts)
    r = subprocess.run([tool, vocab], input=data.encode(), stdout=subprocess.PIPE, check=False)
    if r.returncode != 0:
        raise RuntimeError('tok_tool failed on %s (exit %d)' % (vocab, r.returncode))
    lines = r.stdout.decode().split('\n')[: len(texts)]
    res = []
    for ln in lines:
        ids_s, _, dec_hex = ln.partition('\t')
        ids = [int(x) for x in ids_s.split()] if ids_s and ids_s != 'ERROR' else ([] if ids_s != 'ERROR' else None)
        res.append((ids, bytes.fromhex(dec_hex)))
    return res


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]
    n_random = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    own = os.path.join(harness.SRC, 'models')
    cases = [(os.path.join(own, 'tok512.model'),
              [os.path.join(own, 'tok512.bin'), os.path.join(own, 'stories260K.gguf')])]
    llama2 = [harness.test_data('models/llama2-tokenizer/' + f, 'the 32000-token Llama 2 vocabulary')
              for f in ('tokenizer.model', 'tokenizer.bin', 'ggml-vocab-llama-spm.gguf')]
    passed = failed = 0
    if all(llama2):
        cases.insert(0, (llama2[0], llama2[1:]))
    elif harness.in_ci():
        failed += 1
    texts = FIXED + random_strings(n_random)
    for mpath, vocabs in cases:
        model = os.path.basename(mpath)
        sp = spm.SentencePieceProcessor(model_file=mpath)
        collapses = sp.encode('a  b') == sp.encode('a b')
        inputs = [collapse_spaces(t) if collapses else t for t in texts]
        want = [sp.encode(t) for t in inputs]
        for vpath in vocabs:
            vocab = os.path.basename(vpath)
            got = run_tool(tool, vpath, inputs)
            bad = 0
            for t, w, (ids, dec) in zip(inputs, want, got):
                ok_ids = ids == w
                ok_dec = dec == t.encode('utf-8')
                if ok_ids and ok_dec:
                    passed += 1
                    continue
                failed += 1
                bad += 1
                if bad <= 5:
                    print('MISMATCH %s: %r\n  sentencepiece %s\n  swisd         %s\n  decoded %r'
                          % (vocab, t, w, ids, dec))
            print('%s vs %s: %d strings, %d mismatches' % (vocab, model, len(inputs), bad))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
