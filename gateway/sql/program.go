package sql

import (
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Program is a Kinesis Data Analytics application's code: CREATE STREAM
// and CREATE PUMP statements, separated by semicolons.
type Program struct {
	Statements []*Statement `parser:"( @@ ';'* )*"`
}

// Statement is one CREATE [OR REPLACE] STREAM or PUMP.
type Statement struct {
	Pos    lexer.Position
	Stream *CreateStream `parser:"'CREATE' ( 'OR' 'REPLACE' )? ( @@"`
	Pump   *CreatePump   `parser:"| @@ )"`
}

// CreateStream declares an in-application stream and its columns.
type CreateStream struct {
	Name    Ident        `parser:"'STREAM' @(Ident | QuotedIdent)"`
	Columns []*ColumnDef `parser:"'(' @@ ( ',' @@ )* ')'"`
}

// ColumnDef is a column of an in-application stream.
type ColumnDef struct {
	Pos  lexer.Position
	Name Ident     `parser:"@(Ident | QuotedIdent)"`
	Type *TypeName `parser:"@@"`
}

// CreatePump is a continuous INSERT INTO ... SELECT STREAM.
type CreatePump struct {
	Name    Ident   `parser:"'PUMP' @(Ident | QuotedIdent) 'AS'"`
	Into    Ident   `parser:"'INSERT' 'INTO' @(Ident | QuotedIdent)"`
	Columns []Ident `parser:"( '(' @(Ident | QuotedIdent) ( ',' @(Ident | QuotedIdent) )* ')' )?"`
	Select  *Select `parser:"@@"`
	Pos     lexer.Position
}

// Ident is a name in a statement. SQL folds an unquoted name to upper case
// and keeps a "quoted" one as written; KDA names columns and streams so.
type Ident string

func (n *Ident) Capture(v []string) error {
	t := v[0]
	if strings.HasPrefix(t, `"`) {
		*n = Ident(strings.ReplaceAll(t[1:len(t)-1], `""`, `"`))
	} else {
		*n = Ident(strings.ToUpper(t))
	}
	return nil
}

// ParseProgram parses an application's code (the analytics dialect: its
// keywords include words IoT SQL leaves as names).
func ParseProgram(src string) (*Program, error) {
	p, err := programParser.ParseString("", src)
	if err != nil {
		return nil, syntaxError(err)
	}
	return p, nil
}

// ParseQuery parses one SELECT in the analytics dialect (ad hoc queries).
func ParseQuery(src string) (*Select, error) {
	q, err := queryParser.ParseString("", strings.TrimRight(strings.TrimSpace(src), ";"))
	if err != nil {
		return nil, syntaxError(err)
	}
	return q, nil
}
