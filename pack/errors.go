package pack

import (
	"fmt"

	"github.com/airlock-dev/airlock/internal/errclass"
)

var (
	// ErrSpec reports an invalid airlock.yaml. The release engineer fixes
	// the file; it is not a rejected bundle (errclass.CouldNotRun).
	ErrSpec = errclass.New(errclass.CouldNotRun, "invalid release description")
	// ErrSource reports an artifact source (image, model, file, SBOM) that cannot be packed.
	ErrSource = errclass.New(errclass.CouldNotRun, "cannot pack source")
)

// SpecError locates a problem in airlock.yaml.
type SpecError struct {
	File  string // path of airlock.yaml
	Line  int    // 1-based line, 0 when unknown
	Field string // e.g. "images[2].ref"
	Msg   string
}

func (e *SpecError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

func (e *SpecError) Unwrap() error { return ErrSpec }

// SourceError names the artifact that could not be packed. It is of class
// CouldNotRun even when it wraps an integrity error: a source that serves
// wrong bytes stops the pack; no bundle was judged.
type SourceError struct {
	Artifact string // image ref, model name, file or SBOM source path
	Err      error
}

func (e *SourceError) Error() string { return fmt.Sprintf("%s: %v", e.Artifact, e.Err) }

func (e *SourceError) Unwrap() []error { return []error{ErrSource, e.Err} }

// Class makes a SourceError "could not run" whatever it wraps.
func (e *SourceError) Class() errclass.Class { return errclass.CouldNotRun }

// TempDirError reports a temporary directory pack could not create.
type TempDirError struct {
	Dir string
	Err error
}

func (e *TempDirError) Error() string {
	return fmt.Sprintf("temporary directory in %s: %v", e.Dir, e.Err)
}

func (e *TempDirError) Unwrap() error { return e.Err }
