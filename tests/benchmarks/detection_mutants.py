"""Mutants of the reference till's decision code, for `bench_detection.py` (issue 14: detection power by mutation).

A small `ast` mutator rather than mutmut: mutmut rewrites a whole tree in place and runs one test command per
mutant, with operators (numbers, strings, every argument) that mostly break the till's plumbing; here the
mutation points must be the till's *decisions* only (the `correct` profile, the sale flow, the ZVT client's
verdicts, printing and the drawer), each mutant must run a whole `posrig run` against a copied tree, and ids must
stay stable for the committed file of equivalent mutants. So: one deterministic AST walk per file over the
functions named in `SCOPES`, seven operator families, ids like `register.py:183 flip-if`.

    >>> ms = mutants(only_files=["profiles.py"])
    >>> ms[0].id.startswith("profiles.py:") and all(m.file == "profiles.py" for m in ms)
    True

Operators (each makes one mutant per point):

| operator | what changes |
|---|---|
| flip-if, flip-while, flip-ifexp | the condition `c` becomes `not (c)` |
| drop-not | `not c` becomes `c` |
| flip-compare | `==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`, `<` <-> `>=`, `>` <-> `<=` |
| and-or | `and` <-> `or` |
| drop-call | a call statement (an abort, a query, a print, a journal write of a status) becomes `pass` |
| swap-status | a sale status given to `finish`/`status=`: paid <-> failed, cancelled/declined/unknown -> failed |
| flip-return | `return True` <-> `return False`; a goods answer ANSWER_BOOK <-> ANSWER_NO_GOODS |
| print-early, print-late | a print or drawer statement moves before its previous / after its next sibling |
| drop-except | an exception handler is removed (the whole `try` becomes its body when it was the only one) |

Left alone: logging calls, docstrings, journal steps that only record a detail (`step(run, "querying",
detail=...)`), messages and details (`message=`, `detail=`, f-strings, `raise` arguments), the seeded bug
profiles' own classes, and formatting helpers.
"""

from __future__ import annotations

import ast
import random
from dataclasses import asdict, dataclass
from pathlib import Path

TILL = Path(__file__).resolve().parents[2] / "harness" / "reference_till"

# file -> {class name or "" for module level: function names (None: every method of the class)}
SCOPES: dict[str, dict[str, set[str] | None]] = {
    "register.py": {"Register": {"start", "finish", "settle_paid", "print_receipt", "sell", "_cash", "authorize",
                                 "_answer", "abort", "recover", "_resolve_open_payments", "_reprint",
                                 "_reprint_loop"}},
    "profiles.py": {"Correct": None},
    "ecr_client.py": {"EcrClient": {"_await_ack", "authorization", "_withdraw", "_until_end", "_simple", "abort"},
                      "PaymentResult": {"result_code", "approved"}, "": {"is_offline"}},
    "receipt.py": {"ReceiptPrinterClient": {"_state", "ready", "kick_drawer", "print"}, "": {"sale_receipt"}},
    "app.py": {"ControlHandler": {"do_POST"}, "": {"serve"}},
    "journal.py": {"Journal": {"transition", "unresolved", "known_transactions"}},
}

STATUS_SWAP = {"paid": "failed", "failed": "paid", "cancelled": "failed", "declined": "failed",
               "unknown": "failed"}
ANSWER_SWAP = {"ANSWER_BOOK": "ANSWER_NO_GOODS", "ANSWER_NO_GOODS": "ANSWER_BOOK"}
COMPARE_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
                ast.IsNot: ast.Is, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt}
PRINTS = {"print_receipt", "print_sale_receipt", "kick_drawer", "cashdraw", "cut", "print", "_reprint"}
PLUMBING = {"close", "set"}            # dropping it only leaks a socket / changes a receipt's type style
QUIET_CALLS = {"debug", "info", "warning", "error", "exception"}        # log.<these>: not decisions
TEXT_KEYWORDS = {"message", "detail", "error"}                           # what the till writes, not decides
OPERATORS = ("flip-if", "flip-while", "flip-ifexp", "drop-not", "flip-compare", "and-or", "drop-call",
             "swap-status", "flip-return", "print-early", "print-late", "drop-except")


@dataclass(frozen=True)
class Mutant:
    """One mutation point. `path` finds the node again in a fresh parse of the file."""

    id: str              # "register.py:183 flip-if" (+ "#2" for a second point of the same kind on the line)
    file: str
    line: int
    operator: str
    function: str        # "Register.sell"
    original: str        # the original source line (stripped)
    mutated: str         # the changed code, as source
    path: tuple          # ((field, index), ...) from the module to the node

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d


class MutantError(ValueError):
    """A mutant cannot be applied (the file changed since the ids were listed)."""


# -- finding the points -------------------------------------------------------------------------------------------
def _children(node: ast.AST):
    """(field, index, child) in source order; index None for a single child."""
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield name, i, item
        elif isinstance(value, ast.AST):
            yield name, None, value


def _call_name(call: ast.AST) -> str:
    if isinstance(call, ast.Call):
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return ""


def _is_log(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Attribute) and f.attr in QUIET_CALLS and isinstance(f.value, ast.Name) \
        and f.value.id in ("log", "logging")


def _detail_only_step(call: ast.Call) -> bool:
    """`step(run, "state", detail=...)` / `transition(...)` that records no field of the sale: evidence only."""
    return _call_name(call) in ("step", "transition", "record_zvt") and \
        all(k.arg in TEXT_KEYWORDS for k in call.keywords)


def _print_statement(stmt: ast.stmt) -> bool:
    """A statement that prints or pulses the drawer: a call, or an `if` whose body is only such a call."""
    if isinstance(stmt, ast.Expr):                       # a method (print_receipt, cut, ...), not print()
        return isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute) \
            and _call_name(stmt.value) in PRINTS
    if isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1:
        return _print_statement(stmt.body[0])
    return False


def _scoped_functions(tree: ast.Module, file: str):
    """(qualified name, path, node) of every function the file's scope names, in source order."""
    scope = SCOPES[file]
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (scope.get("") or set()):
            yield node.name, (("body", i),), node
        elif isinstance(node, ast.ClassDef) and node.name in scope:
            wanted = scope[node.name]
            for j, fn in enumerate(node.body):
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and (wanted is None or fn.name in wanted):
                    yield f"{node.name}.{fn.name}", (("body", i), ("body", j)), fn


def _line(lines: list[str], n: int) -> str:
    return lines[n - 1].strip() if 0 < n <= len(lines) else ""


def _points(fn: ast.AST, base: tuple):
    """(operator, path, node) for every mutation point under the function `fn`, in source order."""
    out: list[tuple[str, tuple, ast.AST]] = []

    def visit(node: ast.AST, path: tuple, quiet: bool) -> None:
        # statement-level points (need the parent list): drop-call, print moves, drop-except
        for field, index, child in _children(node):
            here = path + ((field, index),)
            hush = quiet
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                continue                                            # docstring
            if isinstance(child, (ast.Raise, ast.JoinedStr)):
                continue                                            # what an error says
            if isinstance(child, ast.keyword) and child.arg in TEXT_KEYWORDS:
                continue
            if isinstance(child, ast.Call) and _is_log(child):
                continue
            if not hush:
                _point(node, field, index, child, here)
            visit(child, here, hush)

    def _point(parent: ast.AST, field: str, index: int | None, node: ast.AST, path: tuple) -> None:
        siblings = getattr(parent, field) if index is not None else None
        if isinstance(node, ast.If):
            out.append(("flip-if", path, node))
        elif isinstance(node, ast.While) and not isinstance(node.test, ast.Constant):
            out.append(("flip-while", path, node))
        elif isinstance(node, ast.IfExp) and not _text_ifexp(node):
            out.append(("flip-ifexp", path, node))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append(("drop-not", path, node))
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in COMPARE_SWAP:
                    out.append((f"flip-compare{'' if k == 0 else f'@{k}'}", path, node))
        elif isinstance(node, ast.BoolOp) and not _default(node):
            out.append(("and-or", path, node))
        elif isinstance(node, ast.Try) and node.handlers:
            for k in range(len(node.handlers)):
                out.append((f"drop-except{'' if k == 0 else f'@{k}'}", path, node))
        elif isinstance(node, ast.Return) and node.value is not None:
            v = node.value
            if (isinstance(v, ast.Constant) and isinstance(v.value, bool)) or \
                    (isinstance(v, (ast.Name, ast.Attribute)) and _name(v) in ANSWER_SWAP):
                out.append(("flip-return", path, node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATUS_SWAP \
                and _status_position(parent, field, index):
            out.append(("swap-status", path, node))
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_log(node.value) \
                and not _detail_only_step(node.value) and _call_name(node.value) not in PLUMBING \
                and isinstance(siblings, list):
            out.append(("drop-call", path, node))
        if isinstance(siblings, list) and isinstance(node, ast.stmt) and _print_statement(node):
            if index > 0:
                out.append(("print-early", path, node))
            if index < len(siblings) - 1:
                out.append(("print-late", path, node))

    status_parents: dict[int, bool] = {}

    def _status_position(parent: ast.AST, field: str, index: int | None) -> bool:
        if isinstance(parent, ast.keyword):
            return parent.arg == "status"
        if isinstance(parent, ast.Call) and field == "args":
            return _call_name(parent) == "finish" and index == 1
        if isinstance(parent, ast.IfExp) and field in ("body", "orelse"):
            return status_parents.get(id(parent), False)
        return False

    # an IfExp choosing a status: `status = "cancelled" if ... else "failed"` or inside finish()/status=
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.IfExp) and \
                any(isinstance(t, ast.Name) and t.id == "status" for t in node.targets):
            status_parents[id(node.value)] = True
        if isinstance(node, ast.keyword) and node.arg == "status" and isinstance(node.value, ast.IfExp):
            status_parents[id(node.value)] = True
        if isinstance(node, ast.Call) and _call_name(node) == "finish" and len(node.args) > 1 \
                and isinstance(node.args[1], ast.IfExp):
            status_parents[id(node.args[1])] = True

    visit(fn, base, False)
    return out


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _default(node: ast.BoolOp) -> bool:
    """`x or {}`: a default for a missing value, not a decision."""
    last = node.values[-1]
    return isinstance(node.op, ast.Or) and (
        (isinstance(last, ast.Constant) and last.value in ("", None, 0)) or
        (isinstance(last, (ast.Dict, ast.List, ast.Tuple)) and not getattr(last, "keys", getattr(last, "elts", 1))))


def _text_ifexp(node: ast.IfExp) -> bool:
    """A choice between two texts (messages, receipt words) that are not sale statuses."""
    def text(n):
        return isinstance(n, (ast.Constant, ast.JoinedStr)) and not (
            isinstance(n, ast.Constant) and n.value in STATUS_SWAP) and \
            (isinstance(n, ast.JoinedStr) or isinstance(n.value, str))
    return text(node.body) and text(node.orelse)


def _resolve(tree: ast.AST, path: tuple) -> tuple[ast.AST, str, int | None, ast.AST]:
    """(parent, field, index, node) at `path`."""
    parent, node, field, index = None, tree, "", None
    for field, index in path:
        parent = node
        node = getattr(parent, field) if index is None else getattr(parent, field)[index]
    return parent, field, index, node


def _apply(tree: ast.Module, path: tuple, operator: str) -> None:
    """Mutate `tree` in place."""
    parent, field, index, node = _resolve(tree, path)
    op, _, k = operator.partition("@")
    k = int(k or 0)
    if op in ("flip-if", "flip-while", "flip-ifexp"):
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif op == "drop-not":
        _replace(parent, field, index, node.operand)
    elif op == "flip-compare":
        node.ops[k] = COMPARE_SWAP[type(node.ops[k])]()
    elif op == "and-or":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "drop-call":
        getattr(parent, field)[index] = ast.Pass()
    elif op == "swap-status":
        node.value = STATUS_SWAP[node.value]
    elif op == "flip-return":
        v = node.value
        if isinstance(v, ast.Constant):
            v.value = not v.value
        elif isinstance(v, ast.Attribute):
            v.attr = ANSWER_SWAP[v.attr]
        else:
            v.id = ANSWER_SWAP[v.id]
    elif op in ("print-early", "print-late"):
        body = getattr(parent, field)
        other = index - 1 if op == "print-early" else index + 1
        body[index], body[other] = body[other], body[index]
    elif op == "drop-except":
        if len(node.handlers) > 1:
            del node.handlers[k]
        else:
            if node.finalbody:                                   # keep the finally: try/finally
                node.body, node.handlers, node.orelse = node.body + node.orelse, [], []
            else:
                getattr(parent, field)[index:index + 1] = node.body + node.orelse
    else:
        raise MutantError(f"unknown operator {operator!r}")


def _replace(parent: ast.AST, field: str, index: int | None, new: ast.AST) -> None:
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _shown(operator: str, node: ast.AST, tree: ast.Module, path: tuple, source: str) -> str:
    """`source` is the original line."""
    """The mutated code, as one short line of source."""
    try:
        _, _, _, after = _resolve(tree, path)
    except (IndexError, AttributeError):
        after = None
    if operator in ("drop-call",):
        return "pass"
    if operator.startswith("drop-except"):
        return f"(handler {int(operator.partition('@')[2] or 0) + 1} of the try at this line removed)"
    if operator == "print-early":
        return "(moved above the statement before it)"
    if operator == "print-late":
        return "(moved below the statement after it)"
    text = ast.unparse(after if after is not None else node).splitlines()[0]
    if operator == "flip-if" and source.startswith("elif"):
        text = "el" + text
    return text if len(text) <= 160 else text[:157] + "..."


def mutants(only_files: list[str] | None = None, root: Path = TILL) -> list[Mutant]:
    """Every mutant of the scoped files, in a stable order (file order of SCOPES, then source order)."""
    found: list[Mutant] = []
    for file in SCOPES:
        if only_files and file not in only_files:
            continue
        source = (root / file).read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        seen: dict[str, int] = {}
        for qual, base, fn in _scoped_functions(tree, file):
            for operator, path, node in _points(fn, base):
                line = getattr(node, "lineno", 0)
                key = f"{file}:{line} {operator}"
                seen[key] = seen.get(key, 0) + 1
                mid = key if seen[key] == 1 else f"{key}#{seen[key]}"
                mutated_tree = ast.parse(source)
                _apply(mutated_tree, path, operator)
                found.append(Mutant(mid, file, line, operator, qual, _line(lines, line),
                                    _shown(operator, node, mutated_tree, path, _line(lines, line)), path))
    return found


def mutated_source(mutant: Mutant, root: Path = TILL) -> str:
    """The whole file with the mutant applied (as `ast.unparse` writes it: comments and layout are gone, the code
    is the same). MutantError when the file no longer has that point."""
    source = (root / mutant.file).read_text()
    tree = ast.parse(source)
    try:
        _, _, _, node = _resolve(tree, mutant.path)
    except (IndexError, AttributeError) as exc:
        raise MutantError(f"{mutant.id}: no such point in {mutant.file} any more ({exc})") from None
    if getattr(node, "lineno", 0) != mutant.line:
        raise MutantError(f"{mutant.id}: {mutant.file} changed since the mutants were listed; list them again")
    _apply(tree, mutant.path, mutant.operator)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


def select(all_mutants: list[Mutant], count: int | None, seed: int) -> list[Mutant]:
    """`count` mutants drawn with `seed` (all when None or more than there are), kept in their stable order."""
    if count is None or count >= len(all_mutants):
        return list(all_mutants)
    chosen = set(random.Random(seed).sample(range(len(all_mutants)), count))
    return [m for i, m in enumerate(all_mutants) if i in chosen]


def sanity_source(root: Path = TILL) -> str:
    """register.py where every settled payment is recorded as failed instead (and no receipt printed): a mutant the
    matrix must kill at once. Proves the runs execute the copied tree."""
    tree = ast.parse((root / "register.py").read_text())
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name == "Register":
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "settle_paid":
                    fn.body = ast.parse('self.finish(run, "failed", info, message="sanity mutant")\n'
                                        'return').body
                    return ast.unparse(tree) + "\n"
    raise MutantError("register.py has no Register.settle_paid: the sanity mutant needs updating")
