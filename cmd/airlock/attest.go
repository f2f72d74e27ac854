package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/attest"
	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/verify"
)

// attestFlags are --attest KEY and -o FILE, shared by verify, mirror and install.
type attestFlags struct {
	key    string
	output string
}

func (f *attestFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.key, "attest", "", "write a signed verification record (in-toto SLSA verification summary in a DSSE envelope) signed with this private key (cosign format; password from $AIRLOCK_PASSWORD or a prompt) to -o")
	fs.StringVarP(&f.output, "output", "o", "", "file the --attest record is written to (required with --attest)")
}

func (f *attestFlags) validate() error {
	switch {
	case f.key != "" && f.output == "":
		return usagef("--attest needs -o FILE: where to write the verification record")
	case f.key == "" && f.output != "":
		return usagef("-o names the file of the --attest record; give --attest KEY too")
	}
	return nil
}

// recorder signs and writes verification records. A nil *recorder writes
// nothing.
type recorder struct {
	signer  attest.Signer
	output  string
	op      string
	release func() // lets go of the key (a PKCS#11 session)
}

// close lets go of the recorder's key; a nil recorder is fine.
func (r *recorder) close() {
	if r != nil && r.release != nil {
		r.release()
	}
}

// newRecorder loads the --attest key up front, so a wrong password fails
// before a long verification; nil without --attest.
func (f *attestFlags) newRecorder(ctx context.Context, e *env, op string) (*recorder, error) {
	if f.key == "" {
		return nil, nil
	}
	signers, release, err := loadSigners(ctx, e, []string{f.key})
	if err != nil {
		return nil, err
	}
	s, ok := signers[0].(attest.Signer)
	if !ok {
		release()
		return nil, fmt.Errorf("%s: this key cannot sign verification records", f.key)
	}
	return &recorder{signer: s, output: f.output, op: op, release: release}, nil
}

// write builds the record of rep, signs it and writes it atomically to -o.
// It returns the bytes and the digest of the file written.
func (r *recorder) write(ctx context.Context, rep *verify.Report) ([]byte, string, error) {
	st, err := attest.New(rep, attest.Options{Airlock: version(), Operation: r.op})
	if err != nil {
		return nil, "", err
	}
	data, digest, err := attest.Sign(ctx, st, r.signer)
	if err != nil {
		return nil, "", err
	}
	f, err := atomicfile.Create(r.output, 0o644)
	if err != nil {
		return nil, "", err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return nil, "", err
	}
	if err := f.Commit(); err != nil {
		return nil, "", err
	}
	return data, digest, nil
}

// writeIfRead writes a record when rep describes a bundle whose head was
// read (a rejected bundle gets a FAILED record), and says so on w.
func (r *recorder) writeIfRead(ctx context.Context, e *env, rep *verify.Report) (string, error) {
	_, d, err := r.writeRecord(ctx, e, rep)
	return d, err
}

// writeRecord is writeIfRead returning the record's bytes as well.
func (r *recorder) writeRecord(ctx context.Context, e *env, rep *verify.Report) ([]byte, string, error) {
	if r == nil || rep == nil || rep.Bundle.Root == "" || rep.HeadOnly {
		return nil, "", nil
	}
	data, d, err := r.write(ctx, rep)
	if err != nil {
		return nil, "", err
	}
	result := attest.Failed
	if rep.Verified {
		result = attest.Passed
	}
	fmt.Fprintf(e.stderr, "verification record (%s) written to %s (%s)\n", result, r.output, d)
	return data, d, nil
}
