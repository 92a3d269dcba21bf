package sandbox

import (
	"fmt"
	"strings"
	"unicode"
)

// The expression grammar below mirrors the jinja library's parser (precedence,
// its quirks included) so that the rewritten template means what the original
// meant; the rewrite only wraps sub-expressions in guard calls.

type tokKind int

const (
	tokName tokKind = iota
	tokInt
	tokFloat
	tokString
	tokOp // + - * / % < > = == != <= >=
	tokComma
	tokDot
	tokColon
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokLBrace
	tokRBrace
	tokPipe
	tokTilde
	tokPower
	tokFloorDiv
	tokEOF
)

// tok is one token with its source text (string literals keep their quotes).
type tok struct {
	kind tokKind
	raw  string
}

func lex(s string) []tok {
	var toks []tok
	i := 0
	for i < len(s) {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '\'' || ch == '"':
			start := i
			i++
			for i < len(s) && s[i] != ch {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				i++
			}
			if i < len(s) {
				i++
			}
			toks = append(toks, tok{tokString, s[start:i]})
		case ch >= '0' && ch <= '9':
			start := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			kind := tokInt
			if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) && (len(toks) == 0 || toks[len(toks)-1].kind != tokDot) {
				kind = tokFloat
				i++
				for i < len(s) && isDigit(s[i]) {
					i++
				}
			}
			if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
				kind = tokFloat
				i++
				if i < len(s) && (s[i] == '+' || s[i] == '-') {
					i++
				}
				for i < len(s) && isDigit(s[i]) {
					i++
				}
			}
			toks = append(toks, tok{kind, s[start:i]})
		case ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
			start := i
			for i < len(s) && isIdentByte(s[i]) {
				i++
			}
			toks = append(toks, tok{tokName, s[start:i]})
		default:
			if i+1 < len(s) {
				switch two := s[i : i+2]; two {
				case "**":
					toks, i = append(toks, tok{tokPower, two}), i+2
					continue
				case "//":
					toks, i = append(toks, tok{tokFloorDiv, two}), i+2
					continue
				case "==", "!=", "<=", ">=":
					toks, i = append(toks, tok{tokOp, two}), i+2
					continue
				}
			}
			if k, ok := singleTokens[ch]; ok {
				toks = append(toks, tok{k, string(ch)})
			} // the library skips any other character
			i++
		}
	}
	return append(toks, tok{kind: tokEOF})
}

var singleTokens = map[byte]tokKind{
	',': tokComma, '.': tokDot, ':': tokColon, '(': tokLParen, ')': tokRParen, '[': tokLBracket, ']': tokRBracket,
	'{': tokLBrace, '}': tokRBrace, '|': tokPipe, '~': tokTilde,
	'+': tokOp, '-': tokOp, '*': tokOp, '/': tokOp, '%': tokOp, '<': tokOp, '>': tokOp, '=': tokOp,
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func isIdentByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || isDigit(b)
}

func isLetter(r rune) bool { return unicode.IsLetter(r) }

// node is a parsed expression.
type node interface{ isNode() }

type (
	litNode  struct{ raw string } // a literal as written (adjacent strings joined by a space)
	nameNode struct{ name string }
	attrNode struct {
		obj  node
		attr string
	}
	itemNode struct{ obj, key node }
	// sliceNode: nil bounds are absent.
	sliceNode struct{ obj, start, stop, step node }
	callNode  struct {
		fn     node
		args   []node
		kwargs []kwarg
	}
	kwarg struct {
		name  string // "" for **mapping
		value node
	}
	filterNode struct {
		input  node
		name   string
		args   []node
		kwargs []kwarg
	}
	testNode struct {
		subject node
		name    string
		negated bool
		args    []node
	}
	unaryNode struct {
		op      string
		operand node
	}
	binNode struct {
		op          string
		left, right node
	}
	// compareNode is a chain of two or more comparisons (a < b < c).
	compareNode struct {
		operands []node
		ops      []string
	}
	condNode struct{ then, cond, otherwise node } // otherwise may be nil
	listNode struct {
		items []node
		tuple bool
	}
	dictNode struct{ keys, values []node }
)

func (litNode) isNode()     {}
func (nameNode) isNode()    {}
func (attrNode) isNode()    {}
func (itemNode) isNode()    {}
func (sliceNode) isNode()   {}
func (callNode) isNode()    {}
func (filterNode) isNode()  {}
func (testNode) isNode()    {}
func (unaryNode) isNode()   {}
func (binNode) isNode()     {}
func (compareNode) isNode() {}
func (condNode) isNode()    {}
func (listNode) isNode()    {}
func (dictNode) isNode()    {}

// maxNesting bounds how deeply expressions nest, so neither this parser nor
// the library's (both recursive) can run out of stack on hostile source.
const maxNesting = 200

type parser struct {
	toks  []tok
	pos   int
	depth int
}

func (p *parser) peek() tok { return p.toks[min(p.pos, len(p.toks)-1)] }

func (p *parser) next() tok {
	t := p.peek()
	p.pos++
	return t
}

func (p *parser) isName(name string) bool { t := p.peek(); return t.kind == tokName && t.raw == name }

func (p *parser) isOp(ops ...string) bool {
	t := p.peek()
	if t.kind != tokOp {
		return false
	}
	for _, op := range ops {
		if t.raw == op {
			return true
		}
	}
	return false
}

func (p *parser) expect(kind tokKind, what string) error {
	if t := p.next(); t.kind != kind {
		return fmt.Errorf("expected %s but got %q", what, t.raw)
	}
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxNesting {
		return fmt.Errorf("expression nested deeper than %d levels", maxNesting)
	}
	return nil
}

// parseExpr parses a whole expression; empty text is None, as in the library.
func parseExpr(s string) (node, error) {
	if strings.TrimSpace(s) == "" {
		return litNode{"None"}, nil
	}
	p := &parser{toks: lex(s)}
	n, err := p.expression()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("unexpected token %q after expression", t.raw)
	}
	return n, checkDepth(n)
}

// maxDepth bounds an expression tree (long operator chains nest without
// brackets); the rewritten source parenthesizes every level.
const maxDepth = 512

func checkDepth(n node) error {
	if d := astDepth(n); d > maxDepth {
		return fmt.Errorf("expression nested %d levels deep (at most %d)", d, maxDepth)
	}
	return nil
}

func (p *parser) expression() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	e, err := p.or()
	if err != nil || !p.isName("if") {
		return e, err
	}
	p.next()
	cond, err := p.or()
	if err != nil {
		return nil, err
	}
	c := condNode{then: e, cond: cond}
	if p.isName("else") {
		p.next()
		if c.otherwise, err = p.expression(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (p *parser) or() (node, error)  { return p.logical("or", p.and) }
func (p *parser) and() (node, error) { return p.logical("and", p.not) }

func (p *parser) logical(op string, operand func() (node, error)) (node, error) {
	left, err := operand()
	for err == nil && p.isName(op) {
		p.next()
		var right node
		if right, err = operand(); err == nil {
			left = binNode{op, left, right}
		}
	}
	return left, err
}

func (p *parser) not() (node, error) {
	if !p.isName("not") {
		return p.comparison()
	}
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	operand, err := p.not()
	if err != nil {
		return nil, err
	}
	return unaryNode{"not", operand}, nil
}

func (p *parser) comparison() (node, error) {
	left, err := p.concat()
	if err != nil {
		return nil, err
	}
	c := compareNode{operands: []node{left}}
	for {
		var op string
		switch {
		case p.isOp("==", "!=", "<", ">", "<=", ">="):
			op = p.next().raw
		case p.isName("in"):
			p.next()
			op = "in"
		case p.isName("not") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == tokName && p.toks[p.pos+1].raw == "in":
			p.pos += 2
			op = "not in"
		}
		if op == "" {
			break
		}
		right, err := p.concat()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.operands = append(c.operands, right)
	}
	switch len(c.ops) {
	case 0:
		return left, nil
	case 1:
		return binNode{c.ops[0], c.operands[0], c.operands[1]}, nil
	}
	return c, nil
}

func (p *parser) concat() (node, error) {
	left, err := p.addSub()
	for err == nil && p.peek().kind == tokTilde {
		p.next()
		var right node
		if right, err = p.addSub(); err == nil {
			left = binNode{"~", left, right}
		}
	}
	return left, err
}

func (p *parser) addSub() (node, error) {
	left, err := p.mulDiv()
	for err == nil && p.isOp("+", "-") {
		op := p.next().raw
		var right node
		if right, err = p.mulDiv(); err == nil {
			left = binNode{op, left, right}
		}
	}
	return left, err
}

func (p *parser) mulDiv() (node, error) {
	left, err := p.power()
	for err == nil && (p.isOp("*", "/", "%") || p.peek().kind == tokFloorDiv) {
		op := p.next().raw
		var right node
		if right, err = p.power(); err == nil {
			left = binNode{op, left, right}
		}
	}
	return left, err
}

func (p *parser) power() (node, error) {
	base, err := p.unary()
	for err == nil && p.peek().kind == tokPower {
		p.next()
		var exp node
		if exp, err = p.unary(); err == nil {
			base = binNode{"**", base, exp}
		}
	}
	return base, err
}

// unary mirrors the library: a sign binds before the filters that follow it,
// and a signed number literal is folded into the literal.
func (p *parser) unary() (node, error) {
	if !p.isOp("-", "+") {
		e, err := p.atom()
		if err != nil {
			return nil, err
		}
		return p.postfix(e, true)
	}
	op := p.next().raw
	if t := p.peek(); op == "-" && t.kind == tokInt && t.raw == "9223372036854775808" {
		p.next()
		return p.postfix(litNode{"-" + t.raw}, true)
	}
	operand, err := p.unaryOperand()
	if err != nil {
		return nil, err
	}
	if lit, ok := operand.(litNode); ok && isNumberLiteral(lit.raw) {
		return p.postfix(litNode{signed(op, lit.raw)}, true)
	}
	return p.postfix(unaryNode{op, operand}, true)
}

func (p *parser) unaryOperand() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.isOp("-", "+") {
		op := p.next().raw
		operand, err := p.unaryOperand()
		if err != nil {
			return nil, err
		}
		return unaryNode{op, operand}, nil
	}
	e, err := p.atom()
	if err != nil {
		return nil, err
	}
	return p.postfix(e, false)
}

// isNumberLiteral reports whether raw is an unsigned or signed int or float literal.
func isNumberLiteral(raw string) bool {
	raw = strings.TrimLeft(raw, "-+")
	return raw != "" && isDigit(raw[0])
}

// signed applies a sign to a number literal: "-" flips it, "+" keeps it.
func signed(op, raw string) string {
	if op == "+" {
		return raw
	}
	if strings.HasPrefix(raw, "-") {
		return strings.TrimPrefix(raw, "-")
	}
	return "-" + raw
}

func (p *parser) postfix(e node, filters bool) (node, error) {
	for {
		var err error
		switch t := p.peek(); {
		case t.kind == tokDot:
			p.next()
			attr := p.next()
			if attr.kind != tokName && attr.kind != tokInt {
				return nil, fmt.Errorf("expected attribute name after '.', got %q", attr.raw)
			}
			e = attrNode{e, attr.raw} // a method call is this attribute called by the next turn
		case t.kind == tokLBracket:
			p.next()
			if e, err = p.subscript(e); err != nil {
				return nil, err
			}
		case t.kind == tokLParen:
			p.next()
			c := callNode{fn: e}
			if c.args, c.kwargs, err = p.callArgs(); err != nil {
				return nil, err
			}
			e = c
		case filters && t.kind == tokPipe:
			p.next()
			name := p.next()
			if name.kind != tokName {
				return nil, fmt.Errorf("expected filter name after '|', got %q", name.raw)
			}
			f := filterNode{input: e, name: name.raw}
			if p.peek().kind == tokLParen {
				p.next()
				if f.args, f.kwargs, err = p.callArgs(); err != nil {
					return nil, err
				}
			}
			e = f
		case filters && p.isName("is"):
			p.next()
			tn := testNode{subject: e}
			if p.isName("not") {
				p.next()
				tn.negated = true
			}
			name := p.next()
			if name.kind != tokName {
				return nil, fmt.Errorf("expected a test name after 'is', got %q", name.raw)
			}
			tn.name = name.raw
			switch a := p.peek(); {
			case a.kind == tokLParen:
				p.next()
				tn.args, _, err = p.callArgs() // the library drops keyword arguments of tests
			case a.kind == tokInt || a.kind == tokString ||
				a.kind == tokName && a.raw != "and" && a.raw != "or" && a.raw != "else" && a.raw != "if" && a.raw != "in":
				var arg node
				arg, err = p.unaryOperand()
				tn.args = []node{arg}
			}
			if err != nil {
				return nil, err
			}
			e = tn
		default:
			return e, nil
		}
	}
}

func (p *parser) subscript(obj node) (node, error) {
	var start, stop, step node
	var err error
	slice := p.peek().kind == tokColon
	if !slice {
		if start, err = p.expression(); err != nil {
			return nil, err
		}
		slice = p.peek().kind == tokColon
	}
	if !slice {
		if err := p.expect(tokRBracket, "]"); err != nil {
			return nil, err
		}
		return itemNode{obj, start}, nil
	}
	if p.peek().kind == tokColon {
		p.next()
	}
	if k := p.peek().kind; k != tokRBracket && k != tokColon {
		if stop, err = p.expression(); err != nil {
			return nil, err
		}
	}
	if p.peek().kind == tokColon {
		p.next()
		if p.peek().kind != tokRBracket {
			if step, err = p.expression(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expect(tokRBracket, "]"); err != nil {
		return nil, err
	}
	return sliceNode{obj, start, stop, step}, nil
}

func (p *parser) atom() (node, error) {
	t := p.peek()
	switch t.kind {
	case tokInt, tokFloat:
		p.next()
		return litNode{t.raw}, nil
	case tokString:
		p.next()
		parts := []string{t.raw}
		for p.peek().kind == tokString {
			parts = append(parts, p.next().raw)
		}
		return litNode{strings.Join(parts, " ")}, nil
	case tokName:
		p.next()
		switch t.raw {
		case "None", "none", "null", "True", "true", "False", "false":
			return litNode{t.raw}, nil
		}
		return nameNode{t.raw}, nil
	case tokLParen:
		p.next()
		if p.peek().kind == tokRParen {
			p.next()
			return listNode{tuple: true}, nil
		}
		e, err := p.expression()
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tokComma {
			return e, p.expect(tokRParen, ")")
		}
		items := []node{e}
		for p.peek().kind == tokComma {
			p.next()
			if p.peek().kind == tokRParen {
				break
			}
			item, err := p.expression()
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
		return listNode{items: items, tuple: true}, p.expect(tokRParen, ")")
	case tokLBracket:
		p.next()
		var l listNode
		for k := p.peek().kind; k != tokRBracket && k != tokEOF; k = p.peek().kind {
			item, err := p.expression()
			if err != nil {
				return nil, err
			}
			l.items = append(l.items, item)
			if p.peek().kind == tokComma {
				p.next()
			}
		}
		return l, p.expect(tokRBracket, "]")
	case tokLBrace:
		p.next()
		var d dictNode
		for k := p.peek().kind; k != tokRBrace && k != tokEOF; k = p.peek().kind {
			key, err := p.expression()
			if err != nil {
				return nil, err
			}
			if err := p.expect(tokColon, ":"); err != nil {
				return nil, err
			}
			value, err := p.expression()
			if err != nil {
				return nil, err
			}
			d.keys, d.values = append(d.keys, key), append(d.values, value)
			if p.peek().kind == tokComma {
				p.next()
			}
		}
		return d, p.expect(tokRBrace, "}")
	case tokOp:
		if t.raw == "-" {
			p.next()
			if err := p.enter(); err != nil {
				return nil, err
			}
			defer func() { p.depth-- }()
			operand, err := p.atom()
			if err != nil {
				return nil, err
			}
			return unaryNode{"-", operand}, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %q", t.raw)
}

func (p *parser) callArgs() (args []node, kwargs []kwarg, err error) {
	for k := p.peek().kind; k != tokRParen && k != tokEOF; k = p.peek().kind {
		switch {
		case k == tokPower:
			p.next()
			v, err := p.expression()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{value: v})
		case k == tokName && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == tokOp && p.toks[p.pos+1].raw == "=":
			name := p.next().raw
			p.next()
			v, err := p.expression()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name: name, value: v})
		default:
			v, err := p.expression()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, v)
		}
		if p.peek().kind == tokComma {
			p.next()
		}
	}
	return args, kwargs, p.expect(tokRParen, ")")
}
