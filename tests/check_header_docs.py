"""Every function kiln.h declares has its own doc comment: the header is the reference.

A declaration passes when the line before it closes a comment block that starts on a line
of its own (not a previous declaration's trailing comment) and is not a section heading
(`/* ---- ...`), or when the declaration carries a comment of its own on its lines. Also checks that every function the shared library exports is
declared in one of the headers. Usage: check_header_docs.py kiln.h.in [kiln_dlpack.h ...] c_symbols.txt
"""
import re
import sys

headers, symbols = sys.argv[1:-1], sys.argv[-1]
decl = re.compile(r"^(?:const\s+)?[a-z0-9_]+\s*\**\s*(kiln_[a-z0-9_]+)\(")
declared, undocumented = set(), []


def check_header(header):
    """Adds the header's declarations to `declared` and its undocumented ones to `undocumented`."""
    lines = open(header).read().split("\n")
    for i, line in enumerate(lines):
        m = decl.match(line)
        if not m:
            continue
        name = m.group(1)
        declared.add(name)
        j = i
        while not lines[j].rstrip().endswith(";"):  # the declaration may span lines
            j += 1
        own_trailing = any("/*" in lines[k] for k in range(i, j + 1))
        prev_is_doc = False
        if i > 0 and lines[i - 1].rstrip().endswith("*/"):
            start = i - 1  # where the comment block ending on the line before begins
            while start > 0 and "/*" not in lines[start]:
                start -= 1
            opening = lines[start].lstrip()
            prev_is_doc = opening.startswith("/*") and not opening.startswith("/* ----")
        if not (own_trailing or prev_is_doc):
            undocumented.append(f"{header}:{i + 1}: {name} has no doc comment")


for header in headers:
    check_header(header)
exported = {s.strip() for s in open(symbols) if s.strip()}
missing = sorted(exported - declared)
for m in missing:
    undocumented.append(f"{m} is exported but not declared in {', '.join(headers)}")
for u in undocumented:
    print(u)
print(f"{len(declared)} functions declared, {len(undocumented)} problems")
sys.exit(1 if undocumented else 0)
