package awsapi

import (
	"fmt"
	"net/http"
	"strings"
)

// Error is an AWS error: its __type, message and HTTP status.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes a client error (status 400).
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// Common error codes of the JSON 1.1 services.
const (
	CodeSerialization      = "SerializationException"
	CodeUnknownOperation   = "UnknownOperationException"
	CodeValidation         = "ValidationException"
	CodeInvalidArgument    = "InvalidArgumentException"
	CodeResourceNotFound   = "ResourceNotFoundException"
	CodeResourceInUse      = "ResourceInUseException"
	CodeLimitExceeded      = "LimitExceededException"
	CodeInternalFailure    = "InternalFailure"
	CodeAccessDenied       = "AccessDeniedException"
	CodeServiceUnavailable = "ServiceUnavailableException"
)

// Validator collects constraint violations and reports them the way AWS
// does: "2 validation errors detected: Value 'x' at 'streamName' failed to
// satisfy constraint: ...; ...".
type Validator struct{ msgs []string }

// Fail records a violation of field (named as AWS names it, lowerCamelCase).
func (v *Validator) Fail(field string, value any, constraint string) {
	shown := "null"
	if value != nil {
		shown = fmt.Sprintf("'%v'", value)
	}
	v.msgs = append(v.msgs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", shown, field, constraint))
}

// Required fails when present is false.
func (v *Validator) Required(field string, present bool) {
	if !present {
		v.msgs = append(v.msgs, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", field))
	}
}

// Length checks a string's length in characters (when set).
func (v *Validator) Length(field, s string, lo, hi int) {
	n := len([]rune(s))
	switch {
	case n < lo:
		v.Fail(field, s, fmt.Sprintf("Member must have length greater than or equal to %d", lo))
	case n > hi:
		v.Fail(field, s, fmt.Sprintf("Member must have length less than or equal to %d", hi))
	}
}

// Range checks an integer.
func (v *Validator) Range(field string, n, lo, hi int64) {
	switch {
	case n < lo:
		v.Fail(field, n, fmt.Sprintf("Member must have value greater than or equal to %d", lo))
	case n > hi:
		v.Fail(field, n, fmt.Sprintf("Member must have value less than or equal to %d", hi))
	}
}

// Optional returns *p, or def when p is nil, checking it against [lo, hi]:
// the shape of every Limit and MaxResults parameter.
func (v *Validator) Optional(field string, p *int, def, lo, hi int) int {
	if p == nil {
		return def
	}
	v.Range(field, int64(*p), int64(lo), int64(hi))
	return *p
}

// Err returns the collected violations as a ValidationException, or nil.
func (v *Validator) Err() error {
	switch len(v.msgs) {
	case 0:
		return nil
	case 1:
		return Errorf(CodeValidation, "1 validation error detected: %s", v.msgs[0])
	}
	return Errorf(CodeValidation, "%d validation errors detected: %s", len(v.msgs), strings.Join(v.msgs, "; "))
}
