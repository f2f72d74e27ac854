package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/bundle"
)

type signFlags struct {
	keys    []string
	asJSON  bool
	recover bool
}

func (f *signFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&f.keys, "key", "k", nil, "private key to sign with (repeatable): a cosign-compatible PEM file (password from AIRLOCK_PASSWORD or a prompt) or a pkcs11: URI (PIN from pin-source, AIRLOCK_PKCS11_PIN or a prompt)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&f.recover, "recover", false, "only restore the head saved by an interrupted sign (BUNDLE.sign-journal); no key needed")
}

func (f *signFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("sign takes exactly one bundle path")
	}
	if args[0] == stdinPath {
		return usagef("sign rewrites the bundle's head in place, so it needs a file, not standard input")
	}
	if len(f.keys) == 0 && !f.recover {
		return usagef("--key is required")
	}
	return nil
}

func signCommand() command {
	return command{
		name:    "sign",
		summary: "Add a signature to a bundle; only its small head is rewritten, never the body.",
		usage:   "BUNDLE --key KEY [--key KEY2] [--json] | BUNDLE --recover",
		examples: `  AIRLOCK_PASSWORD=... airlock sign payments-1.4.2.airlock --key security.key
  airlock sign payments-1.4.2.airlock --key ops.key          # prompts for the password on a terminal
  airlock sign payments-1.4.2.airlock --key cosign.key       # keys made by cosign generate-key-pair work too
  airlock sign payments-1.4.2.airlock.001 --key ops.key      # a volume set: its head is in volume 1
  airlock sign payments-1.4.2.airlock --key 'pkcs11:token=security;object=airlock?pin-source=/run/secrets/pin'
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &signFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				// A volume set is signed in volume 1, which holds the head.
				target := args[0]
				if len(args) == 1 && bundle.IsVolumeSet(target) {
					first, err := firstVolume(target)
					if err != nil {
						return err
					}
					target = first
				}
				if f.recover {
					did, err := bundle.Recover(target)
					if err != nil {
						return err
					}
					printJournal(e.stdout, target, did, "has no interrupted signing to recover")
					if len(f.keys) == 0 {
						return nil
					}
				}
				signers, release, err := loadSigners(ctx, e, f.keys)
				if err != nil {
					return err
				}
				defer release()
				res, err := bundle.Sign(ctx, target, signers)
				if err != nil {
					return err
				}
				if f.asJSON {
					out := map[string]any{"bundle": args[0], "keyids": res.KeyIDs, "signatures": res.Signatures, "inPlace": res.InPlace}
					if res.Journal != bundle.JournalNone {
						out["journal"] = res.Journal
					}
					return writeJSON(e.stdout, out)
				}
				printJournal(e.stdout, target, res.Journal, "")
				how := "head rewritten in place"
				if !res.InPlace {
					how = "bundle rewritten and renamed into place (the head outgrew its room)"
				}
				for _, id := range res.KeyIDs {
					fmt.Fprintf(e.stdout, "signed %s with key %s\n", args[0], id)
				}
				fmt.Fprintf(e.stdout, "%d signature(s) on the bundle; %s\n", res.Signatures, how)
				return nil
			}
		},
	}
}

// printJournal says what was done with the journal of an interrupted sign
// of path (none: the text none, if any).
func printJournal(w io.Writer, path, did, none string) {
	switch did {
	case bundle.JournalRestored:
		fmt.Fprintf(w, "restored the head of %s from %s: an earlier airlock sign was cut short while writing it, and the signatures it was adding are not on the bundle\n", path, path+bundle.JournalSuffix)
	case bundle.JournalDiscarded:
		fmt.Fprintf(w, "removed %s, left by an earlier airlock sign: the head of %s was whole and is kept\n", path+bundle.JournalSuffix, path)
	default:
		if none != "" {
			fmt.Fprintf(w, "%s %s\n", path, none)
		}
	}
}
