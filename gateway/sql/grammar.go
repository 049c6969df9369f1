// Package sql is the SQL front end shared by the MQTT topic rules (AWS IoT
// SQL) and the analytics runtime: a participle grammar for SELECT
// statements and expressions, with positions for error messages, and an
// expression evaluator over JSON-like values whose functions the dialect
// supplies.
package sql

import (
	"fmt"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// Select is a SELECT statement.
type Select struct {
	Pos     lexer.Position
	Stream  bool           `parser:"'SELECT' @'STREAM'?"`
	Items   []*SelectItem  `parser:"@@ ( ',' @@ )*"`
	From    *From          `parser:"'FROM' @@"`
	Joins   []*Join        `parser:"@@*"`
	Where   *Expr          `parser:"( 'WHERE' @@ )?"`
	Stagger *WindowSpec    `parser:"( 'WINDOWED' 'BY' 'STAGGER' @@ )?"`
	Group   []*Expr        `parser:"( 'GROUP' 'BY' @@ ( ',' @@ )* )?"`
	Having  *Expr          `parser:"( 'HAVING' @@ )?"`
	Windows []*NamedWindow `parser:"( 'WINDOW' @@ ( ',' @@ )* )?"`
	OrderBy []*OrderItem   `parser:"( 'ORDER' 'BY' @@ ( ',' @@ )* )?"`
	Limit   *string        `parser:"( 'LIMIT' @Number )?"`
}

// OrderItem is one key of an ORDER BY (ad hoc queries over a range; a
// streaming query has no end to sort).
type OrderItem struct {
	Expr *Expr `parser:"@@"`
	Desc bool  `parser:"( @'DESC' | 'ASC' )?"`
}

// NamedWindow is WINDOW W1 AS (...), which OVER W1 refers to.
type NamedWindow struct {
	Name Name        `parser:"@(Ident | QuotedIdent) 'AS'"`
	Spec *WindowSpec `parser:"@@"`
}

// WindowSpec is a window of the analytics dialect: sliding, (PARTITION BY
// k RANGE INTERVAL '1' MINUTE PRECEDING) or (... ROWS 10 PRECEDING); or,
// after WINDOWED BY STAGGER, (PARTITION BY k RANGE INTERVAL '1' MINUTE).
type WindowSpec struct {
	Pos       lexer.Position
	Partition []*Expr `parser:"'(' ( 'PARTITION' 'BY' @@ ( ',' @@ )* )?"`
	Range     *Expr   `parser:"( 'RANGE' @@"`
	Rows      *string `parser:"| 'ROWS' @Number )"`
	Preceding bool    `parser:"@'PRECEDING'? ')'"`
}

// Over is what follows an aggregate in a sliding window: OVER W1 or
// OVER (...).
type Over struct {
	Name Name        `parser:"'OVER' ( @(Ident | QuotedIdent)"`
	Spec *WindowSpec `parser:"| @@ )"`
}

// SelectItem is "*" or an expression with an optional alias.
type SelectItem struct {
	Pos   lexer.Position
	Star  bool  `parser:"( @'*'"`
	Expr  *Expr `parser:"| @@ )"`
	Alias Name  `parser:"( 'AS'? @(Ident | QuotedIdent) )?"`
}

// From is the source: a quoted topic filter (IoT rules) or a stream name.
type From struct {
	Pos    lexer.Position
	Topic  *Str       `parser:"( @String"`
	Stream Name       `parser:"| @(Ident | QuotedIdent)"`
	Table  *TableCall `parser:"| 'TABLE' '(' @@ ')' )"`
	Alias  Name       `parser:"( 'AS'? @(Ident | QuotedIdent) )?"`
}

// Join joins a stream to a reference table: [INNER | LEFT [OUTER]] JOIN
// "TABLE" [AS] alias ON condition.
type Join struct {
	Pos   lexer.Position
	Left  bool  `parser:"( @'LEFT' 'OUTER'? | 'INNER' )? 'JOIN'"`
	Table Name  `parser:"@(Ident | QuotedIdent)"`
	Alias Name  `parser:"( 'AS'? @(Ident | QuotedIdent) )?"`
	On    *Expr `parser:"'ON' @@"`
}

// TableCall is a table function over a cursor, as KDA's
// RANDOM_CUT_FOREST(CURSOR(SELECT STREAM ...), 100, 256, 100000, 1).
type TableCall struct {
	Pos    lexer.Position
	Name   string  `parser:"@Ident '('"`
	Cursor *Select `parser:"'CURSOR' '(' @@ ')'"`
	Args   []*Expr `parser:"( ',' @@ )* ')'"`
}

// Expr is an expression; operators bind from OR (loosest) to unary minus.
type Expr struct {
	Pos   lexer.Position
	Left  *AndExpr   `parser:"@@"`
	Right []*AndExpr `parser:"( 'OR' @@ )*"`
}

type AndExpr struct {
	Left  *NotExpr   `parser:"@@"`
	Right []*NotExpr `parser:"( 'AND' @@ )*"`
}

type NotExpr struct {
	Not bool     `parser:"@'NOT'?"`
	Cmp *CmpExpr `parser:"@@"`
}

type CmpExpr struct {
	Left *AddExpr `parser:"@@"`
	Op   *CmpOp   `parser:"@@?"`
}

// CmpOp is what follows the left side of a comparison: an operator and
// its right side, IS [NOT] NULL, or [NOT] IN / LIKE / BETWEEN.
type CmpOp struct {
	Pos     lexer.Position
	Op      string   `parser:"  @( '=' | '<>' | '!=' | '<=' | '>=' | '<' | '>' )"`
	Right   *AddExpr `parser:"  @@"`
	Is      *IsNull  `parser:"| @@"`
	Not     bool     `parser:"| @'NOT'?"`
	In      []*Expr  `parser:"  ( 'IN' '(' @@ ( ',' @@ )* ')'"`
	Like    *AddExpr `parser:"  | 'LIKE' @@"`
	Between *Between `parser:"  | 'BETWEEN' @@ )"`
}

type IsNull struct {
	Not bool `parser:"'IS' @'NOT'? 'NULL'"`
}

type Between struct {
	Low  *AddExpr `parser:"@@ 'AND'"`
	High *AddExpr `parser:"@@"`
}

type AddExpr struct {
	Left  *MulExpr `parser:"@@"`
	Right []*AddOp `parser:"@@*"`
}

type AddOp struct {
	Op    string   `parser:"@( '+' | '-' | '|' '|' )"`
	Right *MulExpr `parser:"@@"`
}

type MulExpr struct {
	Left  *Unary   `parser:"@@"`
	Right []*MulOp `parser:"@@*"`
}

type MulOp struct {
	Op    string `parser:"@( '*' | '/' | '%' )"`
	Right *Unary `parser:"@@"`
}

type Unary struct {
	Neg     string    `parser:"@( '-' | '+' )?"`
	Primary *Primary  `parser:"@@"`
	Suffix  []*Suffix `parser:"@@*"`
}

// Suffix is a field access (.name) or an index ([expr]).
type Suffix struct {
	Field Name  `parser:"  '.' @(Ident | QuotedIdent)"`
	Index *Expr `parser:"| '[' @@ ']'"`
}

// Primary is a literal, a call, a special form, a name or a parenthesis.
type Primary struct {
	Pos      lexer.Position
	Number   *string   `parser:"  @Number"`
	String   *Str      `parser:"| @String"`
	True     bool      `parser:"| @'TRUE'"`
	False    bool      `parser:"| @'FALSE'"`
	Null     bool      `parser:"| @'NULL'"`
	Case     *Case     `parser:"| @@"`
	Cast     *Cast     `parser:"| @@"`
	Interval *Interval `parser:"| @@"`
	Special  *Special  `parser:"| @@"`
	Call     *Call     `parser:"| @@"`
	Name     Name      `parser:"| @(Ident | QuotedIdent)"`
	Sub      *Expr     `parser:"| '(' @@ ')'"`
}

// Special is a function with SQL's keyword syntax (the analytics
// dialect): EXTRACT(HOUR FROM ts), POSITION('x' IN s), SUBSTRING(s FROM 2
// FOR 3) (also with commas). It runs as the function of its name with the
// parts as arguments, EXTRACT's field first, as a TimeUnit.
type Special struct {
	Pos       lexer.Position
	Extract   string   `parser:"  'EXTRACT' '(' @Ident 'FROM'"`
	From      *Expr    `parser:"    @@ ')'"`
	Position  *AddExpr `parser:"| 'POSITION' '(' @@ 'IN'"`
	In        *AddExpr `parser:"    @@ ')'"`
	Substring *Expr    `parser:"| 'SUBSTRING' '(' @@ ( 'FROM' | ',' )"`
	Start     *Expr    `parser:"    @@"`
	Length    *Expr    `parser:"    ( ( 'FOR' | ',' ) @@ )? ')'"`
}

// Call is a function call. An argument may be * (COUNT(*), IoT's
// encode(*, 'base64')). KDA's time functions add a clause after the
// arguments: STEP(ts BY INTERVAL '1' MINUTE), FLOOR(ts TO HOUR).
type Call struct {
	Pos  lexer.Position
	Name string `parser:"@Ident '('"`
	Args []*Arg `parser:"( @@ ( ',' @@ )* )?"`
	By   *Expr  `parser:"( 'BY' @@"`
	To   string `parser:"| 'TO' @Ident )? ')'"`
	Over *Over  `parser:"@@?"`
}

// Arg is a call's argument: * or an expression.
type Arg struct {
	Star bool  `parser:"  @'*'"`
	Expr *Expr `parser:"| @@"`
}

type Case struct {
	Subject *Expr   `parser:"'CASE' @@?"`
	Whens   []*When `parser:"@@+"`
	Else    *Expr   `parser:"( 'ELSE' @@ )? 'END'"`
}

type When struct {
	Cond *Expr `parser:"'WHEN' @@"`
	Then *Expr `parser:"'THEN' @@"`
}

type Cast struct {
	Value *Expr     `parser:"'CAST' '(' @@ 'AS'"`
	Type  *TypeName `parser:"@@ ')'"`
}

// TypeName is a SQL type with its optional size: VARCHAR(16), DECIMAL(8,2).
type TypeName struct {
	Pos  lexer.Position
	Name string   `parser:"@Ident"`
	Args []string `parser:"( '(' @Number ( ',' @Number )* ')' )?"`
}

// Interval is INTERVAL '5' MINUTE.
type Interval struct {
	Amount Str    `parser:"'INTERVAL' @String"`
	Unit   string `parser:"@Ident"`
}

// keywords of every dialect; the analytics dialect adds its statements'
// and windows' words. IoT SQL keeps them as names, since devices send
// fields called "range" or "into".
const (
	baseKeywords      = `SELECT|STREAM|FROM|WHERE|GROUP|BY|HAVING|AS|AND|OR|NOT|IS|NULL|IN|LIKE|BETWEEN|TRUE|FALSE|CASE|WHEN|THEN|ELSE|END|CAST|INTERVAL`
	analyticsKeywords = `|CREATE|REPLACE|PUMP|INSERT|INTO|TO|OVER|WINDOW|PARTITION|RANGE|ROWS|PRECEDING|WINDOWED|STAGGER|JOIN|LEFT|INNER|OUTER|ON|TABLE|CURSOR|EXTRACT|POSITION|SUBSTRING|FOR|ORDER|ASC|DESC|LIMIT`
)

func newLexer(keywords string) *lexer.StatefulDefinition {
	return lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Comment", Pattern: `--[^\n]*|/\*(?s:.*?)\*/`},
		{Name: "Whitespace", Pattern: `\s+`},
		{Name: "Keyword", Pattern: `(?i)\b(` + keywords + `)\b`},
		{Name: "Ident", Pattern: `[a-zA-Z_][a-zA-Z0-9_$]*`},
		{Name: "QuotedIdent", Pattern: `"(?:[^"]|"")*"`},
		{Name: "String", Pattern: `'(?:[^']|'')*'`},
		{Name: "Number", Pattern: `(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?`},
		{Name: "Op", Pattern: `<>|!=|<=|>=|[-+*/%(),.<>=\[\]|;]`},
	})
}

func build[T any](keywords string) *participle.Parser[T] {
	return participle.MustBuild[T](participle.Lexer(newLexer(keywords)), participle.CaseInsensitive("Keyword"),
		participle.Elide("Comment", "Whitespace"), participle.UseLookahead(4))
}

var (
	selectParser  = build[Select](baseKeywords)
	exprParser    = build[Expr](baseKeywords)
	programParser = build[Program](baseKeywords + analyticsKeywords)
	queryParser   = build[Select](baseKeywords + analyticsKeywords)
)

// Str is a 'string' literal's text, unquoted as it is captured (unquoting
// in the lexer would make the string '-' look like the operator).
type Str string

func (s *Str) Capture(v []string) error {
	*s = Str(strings.ReplaceAll(v[0][1:len(v[0])-1], "''", "'"))
	return nil
}

// Name is an identifier: as written, or the text of a "quoted" one.
type Name string

func (n *Name) Capture(v []string) error {
	t := v[0]
	if strings.HasPrefix(t, `"`) {
		t = strings.ReplaceAll(t[1:len(t)-1], `""`, `"`)
	}
	*n = Name(t)
	return nil
}

// Error is a syntax error with its position.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg) }

func syntaxError(err error) error {
	if pe, ok := err.(participle.Error); ok {
		pos := pe.Position()
		return &Error{Line: pos.Line, Column: pos.Column, Msg: pe.Message()}
	}
	return &Error{Line: 1, Column: 1, Msg: err.Error()}
}

// ParseSelect parses one SELECT statement.
func ParseSelect(src string) (*Select, error) {
	s, err := selectParser.ParseString("", src)
	if err != nil {
		return nil, syntaxError(err)
	}
	return s, nil
}

// ParseExpr parses one expression (substitution templates use it).
func ParseExpr(src string) (*Expr, error) {
	e, err := exprParser.ParseString("", src)
	if err != nil {
		return nil, syntaxError(err)
	}
	return e, nil
}
