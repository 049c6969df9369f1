package sql

// Walk calls fn on every operand (a Unary: a primary and its suffixes) of
// the expression, outermost first, so a dialect can resolve names (and
// qualified names, "S".ROWTIME) or replace calls (aggregates) before it
// runs the expression. fn returns false to skip an operand's insides.
func (e *Expr) Walk(fn func(*Unary) bool) {
	if e == nil {
		return
	}
	e.Left.walk(fn)
	for _, r := range e.Right {
		r.walk(fn)
	}
}

func (a *AndExpr) walk(fn func(*Unary) bool) {
	a.Left.Cmp.walk(fn)
	for _, r := range a.Right {
		r.Cmp.walk(fn)
	}
}

func (c *CmpExpr) walk(fn func(*Unary) bool) {
	c.Left.walk(fn)
	if op := c.Op; op != nil {
		op.Right.walk(fn)
		for _, e := range op.In {
			e.Walk(fn)
		}
		op.Like.walk(fn)
		if op.Between != nil {
			op.Between.Low.walk(fn)
			op.Between.High.walk(fn)
		}
	}
}

func (a *AddExpr) walk(fn func(*Unary) bool) {
	if a == nil {
		return
	}
	a.Left.walk(fn)
	for _, r := range a.Right {
		r.Right.walk(fn)
	}
}

func (m *MulExpr) walk(fn func(*Unary) bool) {
	m.Left.walk(fn)
	for _, r := range m.Right {
		r.Right.walk(fn)
	}
}

func (u *Unary) walk(fn func(*Unary) bool) {
	if !fn(u) {
		return
	}
	for _, s := range u.Suffix {
		s.Index.Walk(fn)
	}
	switch p := u.Primary; {
	case p.Case != nil:
		p.Case.Subject.Walk(fn)
		for _, w := range p.Case.Whens {
			w.Cond.Walk(fn)
			w.Then.Walk(fn)
		}
		p.Case.Else.Walk(fn)
	case p.Cast != nil:
		p.Cast.Value.Walk(fn)
	case p.Call != nil:
		for _, a := range p.Call.Args {
			a.Expr.Walk(fn)
		}
		p.Call.By.Walk(fn)
	case p.Sub != nil:
		p.Sub.Walk(fn)
	case p.Special != nil:
		p.Special.From.Walk(fn)
		p.Special.Position.walk(fn)
		p.Special.In.walk(fn)
		p.Special.Substring.Walk(fn)
		p.Special.Start.Walk(fn)
		p.Special.Length.Walk(fn)
	}
}

// Unary returns the expression's only operand when it is nothing more (a
// name, a call, a literal), or nil.
func (e *Expr) Unary() *Unary {
	if e == nil || len(e.Right) > 0 || len(e.Left.Right) > 0 || e.Left.Left.Not || e.Left.Left.Cmp.Op != nil {
		return nil
	}
	a := e.Left.Left.Cmp.Left
	if len(a.Right) > 0 || len(a.Left.Right) > 0 {
		return nil
	}
	return a.Left.Left
}

// IsBuiltin reports whether every dialect has the function (lower case).
func IsBuiltin(name string) bool { _, ok := builtins[name]; return ok }

// Compare orders two values of comparable kinds (numbers, strings,
// booleans, timestamps); ok is false for values that do not compare.
func Compare(a, b any) (int, bool) { return compare(a, b) }
