package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/internal/keys"
)

type keyFlags struct {
	output    string
	algorithm string
	key       string
	json      bool
}

func (f *keyFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.output, "output", "o", "", "generate: write NAME.key and NAME.pub (required); export-public: write NAME.pub (default: print the PEM)")
	fs.StringVarP(&f.key, "key", "k", "", "export-public: the private key, a file or a pkcs11: URI")
	fs.StringVar(&f.algorithm, "algorithm", keys.DefaultAlgorithm, "generate: "+strings.Join(keys.GenerateAlgorithms(), ", "))
	fs.BoolVar(&f.json, "json", false, "print JSON on stdout")
}

// validate checks the command line of `key SUBCOMMAND`.
func (f *keyFlags) validate(fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: generate, export-public or fingerprint")
	}
	switch args[0] {
	case "generate":
		if len(args) > 1 {
			return usagef("unexpected argument %q (the key name is given with --output)", args[1])
		}
		if f.output == "" {
			return usagef("generate needs --output NAME (writes NAME.key and NAME.pub)")
		}
		if strings.HasSuffix(f.output, ".key") || strings.HasSuffix(f.output, ".pub") {
			return usagef("--output is the name without extension: %q would write %s.key", f.output, f.output)
		}
		known := false
		for _, a := range keys.GenerateAlgorithms() {
			known = known || a == f.algorithm
		}
		if !known {
			return usagef("--algorithm %q: choose one of %s", f.algorithm, strings.Join(keys.GenerateAlgorithms(), ", "))
		}
	case "export-public":
		if len(args) > 1 {
			return usagef("unexpected argument %q (the key is given with --key)", args[1])
		}
		if f.key == "" {
			return usagef("export-public needs --key FILE or --key 'pkcs11:token=...;object=...'")
		}
		if fs.Changed("algorithm") {
			return usagef("--algorithm applies to generate only")
		}
		if strings.HasSuffix(f.output, ".pub") {
			return usagef("--output is the name without extension: %q would write %s.pub", f.output, f.output)
		}
	case "fingerprint":
		if len(args) != 2 {
			return usagef("fingerprint needs exactly one public key file")
		}
		for _, name := range []string{"output", "algorithm", "key"} {
			if fs.Changed(name) {
				return usagef("--%s applies to generate only", name)
			}
		}
	default:
		return usagef("unknown subcommand %q: use generate, export-public or fingerprint", args[0])
	}
	if args[0] == "generate" && fs.Changed("key") {
		return usagef("--key applies to export-public only")
	}
	return nil
}

func keyCommand() command {
	return command{
		name:    "key",
		summary: "Create a signing key pair, export the public key of a private key (file or PKCS#11 token), or show a fingerprint.",
		usage:   "generate --output NAME [--algorithm ALG] [--json] | export-public --key KEY [--output NAME] [--json] | fingerprint FILE.pub [--json]",
		examples: `  airlock key generate --output release          # writes release.key (encrypted) and release.pub
  AIRLOCK_PASSWORD=... airlock key generate -o ci --algorithm ed25519
  airlock key fingerprint keys/release.pub         # the key id shown by verify and counted by policies
  AIRLOCK_PKCS11_PIN=... airlock key export-public --key 'pkcs11:token=release;object=airlock' -o release
                                                   # writes release.pub for the policy from a key held in a token
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &keyFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(fs, args); err != nil {
					return err
				}
				switch args[0] {
				case "generate":
					return runKeyGenerate(e, f)
				case "export-public":
					return runKeyExportPublic(ctx, e, f)
				}
				return runKeyFingerprint(e, f, args[1])
			}
		},
	}
}

// keySummary is the JSON printed by `airlock key generate --json` and
// `airlock key fingerprint --json`.
type keySummary struct {
	Fingerprint string `json:"fingerprint"`
	Algorithm   string `json:"algorithm"`
	PublicKey   string `json:"publicKey"`
	PrivateKey  string `json:"privateKey,omitempty"`
}

func runKeyGenerate(e *env, f *keyFlags) error {
	keyPath := f.output + ".key"
	pw, err := readPassword(e, true, "the new key "+keyPath)
	if err != nil {
		return err
	}
	pub, err := keys.Generate(f.output, f.algorithm, pw)
	if err != nil {
		return err
	}
	if f.json {
		absKey, _ := filepath.Abs(keyPath)
		absPub, _ := filepath.Abs(pub.Source)
		return writeJSON(e.stdout, keySummary{Fingerprint: pub.Fingerprint, Algorithm: pub.Algorithm, PublicKey: absPub, PrivateKey: absKey})
	}
	fmt.Fprintf(e.stdout, "wrote %s (private key, encrypted with your password: keep it secret)\n", keyPath)
	fmt.Fprintf(e.stdout, "wrote %s (public key: give it to verifiers for their policy)\n", pub.Source)
	fmt.Fprintf(e.stdout, "fingerprint %s (%s)\n", pub.Fingerprint, pub.Algorithm)
	return nil
}

func runKeyFingerprint(e *env, f *keyFlags, path string) error {
	pub, err := keys.LoadPublic(path)
	if err != nil {
		return err
	}
	if f.json {
		abs, _ := filepath.Abs(path)
		return writeJSON(e.stdout, keySummary{Fingerprint: pub.Fingerprint, Algorithm: pub.Algorithm, PublicKey: abs})
	}
	fmt.Fprintf(e.stdout, "%s %s %s\n", pub.Fingerprint, pub.Algorithm, path)
	return nil
}

// runKeyExportPublic writes the public half of a private key (a file, or a
// key held in a PKCS#11 token) as the PEM file a policy names.
func runKeyExportPublic(ctx context.Context, e *env, f *keyFlags) error {
	k, err := openKey(ctx, e, f.key)
	if err != nil {
		return err
	}
	defer k.close()
	if f.output == "" {
		pemBytes, err := k.public.PEM()
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(e.stdout, map[string]string{"fingerprint": k.public.Fingerprint, "algorithm": k.public.Algorithm, "key": f.key, "pem": string(pemBytes)})
		}
		_, err = e.stdout.Write(pemBytes)
		return err
	}
	pub, err := keys.WritePublic(f.output+".pub", k.public)
	if err != nil {
		return err
	}
	if f.json {
		abs, _ := filepath.Abs(pub.Source)
		return writeJSON(e.stdout, keySummary{Fingerprint: pub.Fingerprint, Algorithm: pub.Algorithm, PublicKey: abs, PrivateKey: f.key})
	}
	fmt.Fprintf(e.stdout, "wrote %s (public key of %s: give it to verifiers for their policy)\n", pub.Source, f.key)
	fmt.Fprintf(e.stdout, "fingerprint %s (%s)\n", pub.Fingerprint, pub.Algorithm)
	return nil
}
