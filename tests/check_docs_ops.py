"""docs/guide.md holds exactly what `kiln ops` prints (from the op, reduction and linalg
tables), between its begin/end markers, and every NumPy function the tables name exists
in Debian's NumPy. With --update, rewrites that part of the guide instead.

Usage: check_docs_ops.py KILN_EXE GUIDE [--update]
"""
import re
import subprocess
import sys

import numpy

exe, guide = sys.argv[1], sys.argv[2]
update = "--update" in sys.argv[3:]
BEGIN, END = "<!-- begin: output of `kiln ops` -->", "<!-- end: output of `kiln ops` -->"

tables = subprocess.run([exe, "ops"], check=True, capture_output=True, text=True).stdout
text = open(guide).read()
if text.count(BEGIN) != 1 or text.count(END) != 1:
    sys.exit(f"{guide}: expected one '{BEGIN}' and one '{END}' marker")
head, rest = text.split(BEGIN)
body, tail = rest.split(END)
want = "\n" + tables + "\n"

problems = []
# The NumPy column: a plain numpy.* name must resolve (a spelling with arguments is prose).
for name in re.findall(r"`(numpy(?:\.[A-Za-z0-9_]+)+)`", tables):
    obj = numpy
    try:
        for part in name.split(".")[1:]:
            obj = getattr(obj, part)
    except AttributeError:
        problems.append(f"`kiln ops` names {name}, which NumPy {numpy.__version__} does not have")

if update:
    open(guide, "w").write(head + BEGIN + want + END + tail)
    print(f"{guide}: op tables rewritten")
elif body != want:
    import difflib
    diff = difflib.unified_diff(body.splitlines(), want.splitlines(), "docs (committed)", "kiln ops (now)", lineterm="")
    print("\n".join(list(diff)[:60]))
    problems.append(f"{guide} differs from `kiln ops`: run {sys.argv[0]} {exe} {guide} --update")
for p in problems:
    print(p)
rows = tables.count("\n| `")
print(f"{rows} table rows checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
