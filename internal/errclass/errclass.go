package errclass

import "errors"

// Class is what an error means for the caller.
type Class int

const (
	// CouldNotRun: the command did not get to a verdict (I/O, network, a
	// missing or unreadable file, a cancelled run). The zero value: an error
	// that says nothing about its class is this one.
	CouldNotRun Class = iota
	// Rejected: the input was judged and refused (untrusted, policy,
	// malformed, tampered, replayed, unsafe).
	Rejected
	// Usage: the command line or the options given were wrong.
	Usage
)

func (c Class) String() string {
	switch c {
	case Rejected:
		return "rejected"
	case Usage:
		return "usage"
	}
	return "could not run"
}

// Classed is implemented by errors that know their class.
type Classed interface {
	error
	Class() Class
}

// Of returns the class of the first error in err's tree that knows its
// class, and CouldNotRun when none does (or err is nil).
func Of(err error) Class {
	var c Classed
	if errors.As(err, &c) {
		return c.Class()
	}
	return CouldNotRun
}

// sentinel is a comparable error value with a class.
type sentinel struct {
	msg   string
	class Class
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Class() Class  { return s.class }

// New returns a sentinel error of class c, for use with errors.Is.
func New(c Class, msg string) error { return &sentinel{msg: msg, class: c} }

// classed wraps an error with a class.
type classed struct {
	err   error
	class Class
}

func (e *classed) Error() string { return e.err.Error() }
func (e *classed) Unwrap() error { return e.err }
func (e *classed) Class() Class  { return e.class }

// Mark gives err the class c, whatever the errors it wraps say; nil stays
// nil. errors.Is and errors.As still see everything err wraps.
func Mark(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &classed{err: err, class: c}
}
