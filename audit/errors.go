package audit

import (
	"fmt"

	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrBroken reports a log whose chain does not verify: a line was edited,
	// deleted, inserted or reordered, or is not a valid entry.
	ErrBroken = errclass.New(errclass.Rejected, "audit log chain broken")
	// ErrTooLong reports an entry longer than MaxLine bytes.
	ErrTooLong = errclass.New(errclass.CouldNotRun, "audit entry too long")
)

// ChainError says which line of which log breaks the chain, and how.
type ChainError struct {
	File   string
	Line   int // 1-based line number in the file
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Reason)
}

// Unwrap makes every ChainError an ErrBroken.
func (e *ChainError) Unwrap() error { return ErrBroken }
