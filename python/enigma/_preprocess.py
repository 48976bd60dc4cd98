"""Control flow in kernel bodies, rewritten on the kernel function's AST.

A kernel body runs once while it is traced, so a Python ``for`` loop would
be unrolled and an ``if`` on a traced value could not be decided. Two
rewrites run on the kernel's source:

- Native control flow (``_NativeRewriter``): every ``if``/``elif``/``else``,
  ``while``, ``for i in range(...)``, ``a if c else b`` and ``and``/``or``/
  ``not`` becomes a call of a helper in ``_control`` wrapped around the
  user's own statements. The helper runs plain Python for Python values and
  traces (merging or carrying the names the statements assign) for traced
  ones. ``break``/``continue``/``return`` get a guard that is an error only
  inside a traced construct.
- ``for i in enigma.range(...)`` (``_Rewriter``) always becomes a traced
  ``for_range`` loop whose loop-carried values are found exactly: a name
  assigned in the body is carried when it is bound before the loop (checked
  at run time, so temporaries first assigned inside a nested loop or a branch
  are not carried); ``break``/``continue``/``return`` inside it are errors.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
import types

from ._tracing import EnigmaError, IRValue, for_range

_ENTER = "__enigma_range_enter"


class _RangeSentinel:
    """``enigma.range``: only meaningful as ``for i in enigma.range(...)`` in a kernel."""

    def __call__(self, *args, **kwargs):
        raise EnigmaError(
            "enigma.range() must be used as `for i in enigma.range(...)` directly inside an @enigma.kernel "
            "function whose source is available (not in a REPL or exec'd string); for other loops use "
            "`with enigma.for_range(lo, hi, step) as i:`")

    def __repr__(self):
        return "enigma.range"


range = _RangeSentinel()  # noqa: A001 - the reference's name


class _Loop:
    """Run-time half of a rewritten loop: decides which names are carried."""

    def __init__(self, bound: dict, names: tuple, args: tuple):
        if not 1 <= len(args) <= 3:
            raise EnigmaError(f"enigma.range() expects 1-3 arguments, got {len(args)}")
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1)
        # Carried: names bound before the loop whose values the tracer can carry.
        self.slots, inits = carried_slots(bound, names)
        self.loop = for_range(start, stop, step, init=inits) if self.slots else for_range(start, stop, step)
        self.carry = None
        self.results = {}

    def __enter__(self):
        entered = self.loop.__enter__()
        if not self.slots:
            return entered, {}
        iv, self.carry = entered
        return iv, unflatten_carried(self.slots, list(self.carry))

    def end_body(self, current: dict):
        if self.carry is None:
            return
        k = 0
        for n, length in self.slots:
            v = current.get(n)
            if length is None:
                self.carry[k] = v
                k += 1
            else:
                if not isinstance(v, list) or len(v) != length:
                    raise EnigmaError(f"enigma.range: the carried list '{n}' must keep its length {length}")
                for x in v:
                    self.carry[k] = x
                    k += 1

    def __exit__(self, exc_type, exc, tb):
        r = self.loop.__exit__(exc_type, exc, tb)
        if exc_type is None and self.carry is not None:
            self.results = unflatten_carried(self.slots, list(self.carry))
        return r


def _carriable(v) -> bool:
    return isinstance(v, (IRValue, bool, int, float))


def carried_slots(bound: dict, names, convert=lambda v: v):
    """The loop-carried values among `names` (those bound to a value the tracer
    can carry, or to a non-empty list of such): (slots, initial values), where
    slots holds (name, list length or None) and the initial values are
    flattened and passed through `convert`."""
    slots, inits = [], []
    for n in names:
        if n not in bound:
            continue
        v = bound[n]
        if _carriable(v):
            slots.append((n, None))
            inits.append(convert(v))
        elif isinstance(v, list) and v and all(_carriable(x) for x in v):
            slots.append((n, len(v)))
            inits.extend(convert(x) for x in v)
    return slots, inits


def unflatten_carried(slots, values) -> dict:
    """{name: value, or list of values} from the flat carried `values`, in `slots`' order."""
    out, k = {}, 0
    for n, length in slots:
        if length is None:
            out[n] = values[k]
            k += 1
        else:
            out[n] = list(values[k:k + length])
            k += length
    return out


def _enter(bound, names, *args):
    return _Loop(bound, names, args)


# ---- the AST rewrite ----------------------------------------------------------

def _assigned_names(body) -> list:
    """Names bound by assignments anywhere in `body` (not inside nested defs)."""
    out = []

    def target(t):
        if isinstance(t, ast.Name):
            out.append(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                target(e)
        elif isinstance(t, ast.Starred):
            target(t.value)
        elif isinstance(t, (ast.Subscript, ast.Attribute)):
            base = t.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                out.append(base.id)  # acc[k] = ... rebinds a carried list element

    class V(ast.NodeVisitor):
        def visit_Assign(self, n):
            for t in n.targets:
                target(t)
            self.generic_visit(n)

        def visit_AugAssign(self, n):
            target(n.target)
            self.generic_visit(n)

        def visit_AnnAssign(self, n):
            if n.value is not None:
                target(n.target)
            self.generic_visit(n)

        def visit_NamedExpr(self, n):
            target(n.target)
            self.generic_visit(n)

        def visit_For(self, n):
            target(n.target)
            self.generic_visit(n)

        def visit_With(self, n):
            for item in n.items:
                if item.optional_vars is not None:
                    target(item.optional_vars)
            self.generic_visit(n)

        def visit_FunctionDef(self, n):
            out.append(n.name)

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Lambda(self, n):
            pass

    for stmt in body:
        V().visit(stmt)
    seen, unique = set(), []
    for n in out:
        if n not in seen and not n.startswith("__enigma"):
            seen.add(n)
            unique.append(n)
    return unique


def _check_jumps(loop: ast.For, filename: str, first_line: int):
    class V(ast.NodeVisitor):
        def __init__(self):
            self.depth = 0  # plain Python loops inside the traced loop own their break/continue

        def jump(self, n, what):
            line = n.lineno + first_line - 1
            raise EnigmaError(f"{filename}:{line}: `{what}` inside `for ... in enigma.range(...)` cannot be traced; "
                              "use enigma.if_ around the rest of the body, or enigma.while_")

        def visit_Break(self, n):
            if self.depth == 0:
                self.jump(n, "break")

        def visit_Continue(self, n):
            if self.depth == 0:
                self.jump(n, "continue")

        def visit_Return(self, n):
            self.jump(n, "return")

        def visit_For(self, n):
            self.depth += 1
            self.generic_visit(n)
            self.depth -= 1

        visit_While = visit_For

        def visit_FunctionDef(self, n):
            pass

        visit_AsyncFunctionDef = visit_FunctionDef
        visit_Lambda = visit_FunctionDef

    v = V()
    for stmt in loop.body:
        v.visit(stmt)


class _Rewriter(ast.NodeTransformer):
    def __init__(self, is_range, filename, first_line):
        self.is_range = is_range
        self.filename = filename
        self.first_line = first_line
        self.count = 0
        self.changed = False

    def visit_FunctionDef(self, node):
        if getattr(self, "_top_seen", False):
            return node  # nested functions are not traced loops' business
        self._top_seen = True
        self.generic_visit(node)
        return node

    def visit_For(self, node):
        self.generic_visit(node)  # innermost first
        it = node.iter
        if not (isinstance(it, ast.Call) and self.is_range(it.func)):
            return node
        if it.keywords or any(isinstance(a, ast.Starred) for a in it.args) or not 1 <= len(it.args) <= 3:
            line = node.lineno + self.first_line - 1
            raise EnigmaError(f"{self.filename}:{line}: enigma.range() expects 1-3 positional arguments")
        if not isinstance(node.target, ast.Name):
            line = node.lineno + self.first_line - 1
            raise EnigmaError(f"{self.filename}:{line}: the loop variable of enigma.range() must be a simple name")
        if node.orelse:
            line = node.lineno + self.first_line - 1
            raise EnigmaError(f"{self.filename}:{line}: `for ... else` cannot be traced")
        _check_jumps(node, self.filename, self.first_line)
        self.changed = True
        self.count += 1
        k = self.count
        ctx, vals = f"__enigma_loop{k}", f"__enigma_vals{k}"
        names = [n for n in _assigned_names(node.body) if n != node.target.id]
        src = [
            f"{ctx} = {_ENTER}(locals(), {tuple(names)!r}, *__ARGS__)",
            f"with {ctx} as ({node.target.id}, {vals}):",
        ]
        for n in names:
            src.append(f"    if {n!r} in {vals}: {n} = {vals}[{n!r}]")
        src.append("    __BODY__")
        src.append(f"    {ctx}.end_body(locals())")
        for n in names:
            src.append(f"if {n!r} in {ctx}.results: {n} = {ctx}.results[{n!r}]")
        tree = ast.parse("\n".join(src))
        # Splice the loop arguments and body in.
        tree.body[0].value.args[2] = ast.Starred(value=ast.Tuple(elts=it.args, ctx=ast.Load()), ctx=ast.Load())
        with_body = tree.body[1].body
        idx = next(i for i, s in enumerate(with_body)
                   if isinstance(s, ast.Expr) and isinstance(s.value, ast.Name) and s.value.id == "__BODY__")
        with_body[idx:idx + 1] = node.body
        # Generated nodes point at the loop's line; the user's statements keep theirs.
        user_nodes = {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for stmt in tree.body:
            for sub in ast.walk(stmt):
                if id(sub) not in user_nodes and isinstance(sub, (ast.stmt, ast.expr, ast.excepthandler)):
                    ast.copy_location(sub, node)
        return tree.body


# ---- native control flow: if / while / for ... in range / a if c else b / and, or, not ----

_RT = "__enigma_rt"


def _declared_outside(fdef) -> set:
    """Names a kernel declares global or nonlocal: never merged or carried."""
    out = set()
    for n in ast.walk(fdef):
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            out.update(n.names)
    return out


def _loaded_names(expr) -> list:
    seen = []
    for n in ast.walk(expr):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in seen:
            seen.append(n.id)
    return seen


class _NativeRewriter(ast.NodeTransformer):
    """Rewrites a kernel body's control flow into calls of `_control`'s helpers
    (which run plain Python for Python values and trace for traced ones)."""

    def __init__(self, is_range, filename, first_line, outside: set):
        self.is_range = is_range
        self.filename = filename
        self.first_line = first_line
        self.outside = outside
        self.count = 0
        self.stack = []   # enclosing constructs: ("if" | "loop", helper name or None)
        self.top = None

    def where(self, node) -> str:
        return f"{self.filename}:{node.lineno + self.first_line - 1}"

    def helper(self, kind) -> str:
        self.count += 1
        return f"__enigma_{kind}{self.count}"

    def names_of(self, *bodies) -> tuple:
        out = []
        for body in bodies:
            for n in _assigned_names(body):
                if n not in out and n not in self.outside:
                    out.append(n)
        return tuple(out)

    @staticmethod
    def stmts(src: str, **splice) -> list:
        """Statements parsed from `src`; a line `__NAME__` takes the list `splice[NAME]`,
        and a name `__NAME__` in an expression takes the expression `splice[NAME]`."""
        tree = ast.parse(src)

        class Fill(ast.NodeTransformer):
            def visit_Expr(self, n):
                if isinstance(n.value, ast.Name) and n.value.id.startswith("__") and n.value.id[2:-2] in splice:
                    return splice[n.value.id[2:-2]]
                self.generic_visit(n)
                return n

            def visit_Name(self, n):
                if n.id.startswith("__") and n.id.endswith("__") and n.id[2:-2] in splice:
                    return splice[n.id[2:-2]]
                return n

        return Fill().visit(tree).body

    def place(self, new_nodes, node, user):
        """Generated nodes point at the construct's line; the user's keep theirs."""
        user_ids = {id(n) for part in user for stmt in (part if isinstance(part, list) else [part])
                    for n in ast.walk(stmt)}
        for stmt in new_nodes:
            for sub in ast.walk(stmt):
                if id(sub) not in user_ids and isinstance(sub, (ast.stmt, ast.expr, ast.excepthandler)):
                    ast.copy_location(sub, node)
        return new_nodes

    # -- scopes ----------------------------------------------------------------
    def visit_FunctionDef(self, node):
        if self.top is not None:
            return node  # nested helpers run as written
        self.top = node
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        return node

    # -- jumps -------------------------------------------------------------------
    def guard(self, node, what, helpers):
        helpers = [h for h in helpers if h]
        if not helpers:
            return node
        g = self.stmts(f"{_RT}.jump({what!r}, {self.where(node)!r}, ({', '.join(helpers)},))")
        return self.place(g, node, [node]) + [node]

    def loop_jump(self, node, what):
        """``break``/``continue``: the helpers from the innermost one out to the enclosing loop's."""
        helpers = []
        for kind, h in reversed(self.stack):
            helpers.append(h)
            if kind == "loop":
                break
        return self.guard(node, what, helpers)

    def visit_Break(self, node):
        return self.loop_jump(node, "break")

    def visit_Continue(self, node):
        return self.loop_jump(node, "continue")

    def visit_Return(self, node):
        self.generic_visit(node)
        return self.guard(node, "return", [h for _, h in self.stack])

    # -- expressions ---------------------------------------------------------------
    def visit_IfExp(self, node):
        self.generic_visit(node)
        call = self.stmts(f"{_RT}.select(__C__, lambda: __A__, lambda: __B__)",
                          C=node.test, A=node.body, B=node.orelse)[0].value
        return self.place([call], node, [node.test, node.body, node.orelse])[0]

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        fn = "and_" if isinstance(node.op, ast.And) else "or_"
        rest = [ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                                              kwarg=None, defaults=[]), body=v) for v in node.values[1:]]
        call = ast.Call(func=ast.Attribute(value=ast.Name(id=_RT, ctx=ast.Load()), attr=fn, ctx=ast.Load()),
                        args=[node.values[0]] + rest, keywords=[])
        return self.place([call], node, node.values)[0]

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if not isinstance(node.op, ast.Not):
            return node
        call = self.stmts(f"{_RT}.not_(__X__)", X=node.operand)[0].value
        return self.place([call], node, [node.operand])[0]

    # -- statements ------------------------------------------------------------------
    def rebind(self, h, field, names, indent=""):
        return "\n".join(f"{indent}if {n!r} in {h}.{field}: {n} = {h}.{field}[{n!r}]" for n in names)

    def visit_If(self, node):
        h = self.helper("if")
        names = self.names_of(node.body, node.orelse)
        test = self.visit(node.test)
        self.stack.append(("if", h))
        body = self.visit_body(node.body)
        orelse = self.visit_body(node.orelse) or [ast.Pass()]
        self.stack.pop()
        src = (f"{h} = {_RT}.If(__T__, locals(), {names!r}, {self.where(node)!r})\n"
               f"if {h}.then():\n    __BODY__\n    {h}.end_then(locals())\n"
               f"if {h}.orelse():\n{self.rebind(h, 'restore', names, '    ')}\n    __ORELSE__\n"
               f"    {h}.end_else(locals())\n{self.rebind(h, 'results', names)}")
        out = self.stmts(src, T=test, BODY=body, ORELSE=orelse)
        return self.place(out, node, [test, body, orelse])

    def visit_body(self, body):
        out = []
        for stmt in body:
            r = self.visit(stmt)
            if r is None:
                continue
            out.extend(r if isinstance(r, list) else [r])
        return out

    def visit_While(self, node):
        h = self.helper("while")
        names = self.names_of(node.body)
        test = self.visit(node.test)
        cond_names = tuple(n for n in _loaded_names(test) if n in names)
        self.stack.append(("loop", h))
        body = self.visit_body(node.body) or [ast.Pass()]
        self.stack.pop()
        orelse = self.visit_body(node.orelse)
        lam = self.stmts(f"lambda {', '.join(cond_names)}: __T__", T=test)[0].value
        src = (f"{h} = {_RT}.While(locals(), {names!r}, __LAM__, {cond_names!r}, {self.where(node)!r})\n"
               f"while {h}.next(locals()):\n{self.rebind(h, 'vals', names, '    ') or '    pass'}\n    __BODY__\n"
               + ("else:\n    __ORELSE__\n" if orelse else "") + self.rebind(h, "results", names))
        out = self.stmts(src, LAM=lam, BODY=body, ORELSE=orelse)
        return self.place(out, node, [test, body, orelse])

    def visit_For(self, node):
        it = node.iter
        plain_range = (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                       and not self.is_range(it.func) and not it.keywords
                       and not any(isinstance(a, ast.Starred) for a in it.args) and 1 <= len(it.args) <= 3
                       and isinstance(node.target, ast.Name))
        if not plain_range:
            self.stack.append(("loop", None))
            node.body = self.visit_body(node.body)
            self.stack.pop()
            node.iter = self.visit(node.iter)
            node.orelse = self.visit_body(node.orelse)
            return node
        h = self.helper("for")
        names = tuple(n for n in self.names_of(node.body) if n != node.target.id)
        args = [self.visit(a) for a in it.args]
        self.stack.append(("loop", h))
        body = self.visit_body(node.body)
        self.stack.pop()
        orelse = self.visit_body(node.orelse)
        src = (f"{h} = {_RT}.For(range, locals(), {names!r}, (__ARGS__,), {self.where(node)!r})\n"
               f"for {node.target.id} in {h}:\n{self.rebind(h, 'vals', names, '    ') or '    pass'}\n    __BODY__\n"
               f"    {h}.end_body(locals())\n"
               + ("else:\n    __ORELSE__\n" if orelse else "") + self.rebind(h, "results", names))
        out = self.stmts(src, BODY=body, ORELSE=orelse)
        out[0].value.args[3] = ast.Tuple(elts=args, ctx=ast.Load())
        return self.place(out, node, [args, body, orelse])


def _range_matcher(fn):
    import enigma as _enigma_module

    glb = fn.__globals__
    closure = {}
    if fn.__closure__:
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
            try:
                closure[name] = cell.cell_contents
            except ValueError:
                pass

    def lookup(name):
        if name in closure:
            return closure[name]
        return glb.get(name, None)

    def is_range(func) -> bool:
        if isinstance(func, ast.Attribute) and func.attr == "range" and isinstance(func.value, ast.Name):
            return lookup(func.value.id) is _enigma_module
        if isinstance(func, ast.Name):
            return lookup(func.id) is range
        return False

    return is_range


_cache: dict = {}


def preprocess(fn):
    """Returns `fn` with its control flow rewritten: `enigma.range` loops become
    traced loops, and native `if`/`while`/`for ... in range`/`and`/`or`/`not`/
    `a if c else b` trace when their condition or bounds are traced values."""
    key = fn.__code__
    hit = _cache.get(key)
    if hit is not None and hit[0] is fn:
        return hit[1]
    try:
        lines, first_line = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return fn  # no source: enigma.range raises its own error when called
    source = textwrap.dedent("".join(lines))
    filename = fn.__code__.co_filename
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return fn
    fdef = tree.body[0]
    if not isinstance(fdef, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return fn
    is_range = _range_matcher(fn)
    _NativeRewriter(is_range, filename, first_line, _declared_outside(fdef)).visit(fdef)
    _Rewriter(is_range, filename, first_line).visit(fdef)
    fdef.decorator_list = []
    # A factory re-creates the closure: free variables become its parameters.
    free = list(fn.__code__.co_freevars)
    factory = ast.FunctionDef(
        name="__enigma_factory",
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=a) for a in free + [_ENTER, _RT]], vararg=None,
                           kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=[fdef, ast.Return(value=ast.Name(id=fdef.name, ctx=ast.Load()))],
        decorator_list=[], returns=None)
    if "type_params" in ast.FunctionDef._fields:
        factory.type_params = []
    module = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, first_line - 1)
    code = compile(module, filename, "exec")
    ns: dict = {}
    exec(code, fn.__globals__, ns)  # noqa: S102 - the user's own kernel source
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(None)
    from . import _control
    new_fn = ns["__enigma_factory"](*cells, _enter, _control)
    new_fn = types.FunctionType(new_fn.__code__, new_fn.__globals__, fn.__name__, fn.__defaults__,
                                new_fn.__closure__)
    new_fn.__kwdefaults__ = fn.__kwdefaults__
    _cache[key] = (fn, new_fn)
    return new_fn
