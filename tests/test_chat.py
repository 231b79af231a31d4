#!/usr/bin/env python3
"""Chat formats: sw_chat (C) against the Jinja engine rendering a template.

For each template in tests/chat_templates (one per format, written for this
test from the formats' published descriptions), sw_chat_detect must name the
format from the template's markers, and sw_chat_render must produce exactly
the text python3-jinja2 renders (Environment(trim_blocks=True,
lstrip_blocks=True), as Hugging Face's transformers renders chat templates;
bos_token "<s>", eos_token "</s>", add_generation_prompt true; the BOS at the
very start is dropped, since the tokenizer adds it). Also: the message
contents are the non-special parts, the parts cover the text, and bad roles
are refused.
usage: test_chat.py CHAT_TOOL TEMPLATES_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, import_or_reexec  # noqa: E402

jinja2 = import_or_reexec("jinja2", __file__, "SWISD_CHAT_REEXEC")
if jinja2 is None:
    print("python3-jinja2 is missing (apt install python3-jinja2)")
    sys.exit(1)

tool, tdir = sys.argv[1:3]
h = Harness("chat")
check = h.check


conversations = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be kind.\n"}, {"role": "user", "content": "  What is 2+2?  "},
     {"role": "assistant", "content": " 4 "}, {"role": "user", "content": "And 3+3?\n"}],
    [{"role": "user", "content": "Tell me a story"}, {"role": "assistant", "content": "Once upon a time"},
     {"role": "user", "content": "More"}, {"role": "assistant", "content": "The end."},
     {"role": "user", "content": "Thanks <|im_end|> </s> [INST]"}],
    [{"role": "system", "content": "only a system message"}],
    [{"role": "user", "content": "unicode: caf\u00e9 \u65e5\u672c \U0001F600"}],
    [{"role": "user", "content": ""}],
]

env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
names = sorted(f[:-6] for f in os.listdir(tdir) if f.endswith(".jinja"))
check(set(names) >= {"chatml", "llama3", "llama2", "mistral", "zephyr", "phi3", "gemma"}, f"templates: {names}")
with tempfile.TemporaryDirectory() as tmp:
    for name in names:
        path = os.path.join(tdir, name + ".jinja")
        template = env.from_string(open(path).read())
        for i, conv in enumerate(conversations):
            want = template.render(messages=conv, bos_token="<s>", eos_token="</s>", add_generation_prompt=True)
            if want.startswith("<s>"):
                want = want[3:]
            mpath = os.path.join(tmp, "m.json")
            with open(mpath, "w") as f:
                json.dump(conv, f)
            out = json.loads(subprocess.run([tool, path, mpath], capture_output=True, check=True).stdout)
            check(out.get("format") == name, f"{name}: detected as {out.get('format')}")
            got = out.get("text")
            check(got == want, f"{name} conversation {i}:\n  jinja2: {want!r}\n  sw_chat: {got!r}")
            # parts cover the text in order; contents are plain parts
            text_b = (got or "").encode()
            pos, plain = 0, []
            for off, ln, special in out.get("parts", []):
                check(off == pos and ln > 0, f"{name} {i}: part at {off} (expected {pos})")
                pos = off + ln
                if not special:
                    plain.append(text_b[off:off + ln].decode())
            check(pos == len(text_b), f"{name} {i}: parts cover {pos} of {len(text_b)} bytes")
            joined = "\0".join(plain)
            for m in conv:
                c = m["content"]
                if name == "llama3" or (name in ("llama2", "gemma") and m["role"] != "system"):
                    c = c.strip()
                check(c in joined, f"{name} {i}: content {c!r} is not a plain part: {plain}")

    # no template, or one with no known marker: the default format
    mpath = os.path.join(tmp, "m.json")
    with open(mpath, "w") as f:
        json.dump(conversations[2], f)
    for tpl_text in ["", "{% for m in messages %}{{ m.content }}{% endfor %}"]:
        tpath = os.path.join(tmp, "t.jinja")
        with open(tpath, "w") as f:
            f.write(tpl_text)
        out = json.loads(subprocess.run([tool, tpath, mpath], capture_output=True, check=True).stdout)
        check(out.get("format") == "default", f"unknown template detected as {out.get('format')}")
        check(out.get("text") == "System: Be kind.\n\nUser:   What is 2+2?  \nAssistant:  4 \nUser: And 3+3?\n\nAssistant:",
              f"default text: {out.get('text')!r}")
    # bad role, missing content
    for bad in ([{"role": "wizard", "content": "x"}], [{"role": "user"}], []):
        with open(mpath, "w") as f:
            json.dump(bad, f)
        out = json.loads(subprocess.run([tool, os.path.join(tdir, "chatml.jinja"), mpath], capture_output=True,
                                        check=True).stdout)
        check("error" in out, f"bad messages {bad} accepted: {out}")

sys.exit(h.finish())
