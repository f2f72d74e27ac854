package cosign_test

import (
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
)

// FuzzParse: no panics; every refusal is a *ParseError wrapping exactly one
// of ErrMalformed and ErrTooLarge; whatever is accepted is within the limits.
func FuzzParse(f *testing.F) {
	for _, name := range []string{fixtureWorkerManifest, fixtureLegacyManifest} {
		f.Add(readFixture(f, name))
	}
	for _, s := range []string{
		manifestWith("[" + goodLayer() + "]"),
		manifestWith("[" + goodLayer() + "," + goodLayer() + "]"),
		manifestWith("[]"),
		`{"layers":[],"layers":[` + goodLayer() + `]}`,
		`{"LAYERS":[` + goodLayer() + `]}`,
		`{"mediaType":"application/vnd.oci.image.index.v1+json","layers":[` + goodLayer() + `]}`,
		manifestWith(`[` + layerJSON(`"`+cosign.MediaTypeSimpleSigning+`"`, `"`+goodDigest+`"`, "-1", `{}`) + `]`),
		``, `null`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sigs, err := cosign.Parse(data)
		if err != nil {
			var pe *cosign.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			if errors.Is(err, cosign.ErrMalformed) == errors.Is(err, cosign.ErrTooLarge) {
				t.Fatalf("error wraps neither or both sentinels: %v", err)
			}
			_ = err.Error()
			return
		}
		if len(sigs) == 0 || len(sigs) > cosign.MaxSignatures {
			t.Fatalf("accepted %d signatures", len(sigs))
		}
		for _, s := range sigs {
			if s.Payload.MediaType != cosign.MediaTypeSimpleSigning || !checked.ValidDigest(s.Payload.Digest) ||
				s.Payload.Size <= 0 || s.Payload.Size > cosign.MaxPayloadSize ||
				len(s.Signature) == 0 || len(s.Signature) > cosign.MaxSignatureSize {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

// FuzzVerify signs each input with a test key, so that the payload parser
// is reached: no panics; every refusal is a *VerifyError; an accepted
// payload names the subject and is strict JSON.
func FuzzVerify(f *testing.F) {
	const subject = "sha256:8561210439280b2a297585f8394cdcdcfe2ce11eddc54374f8d4d7b40dd06754"
	const other = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	f.Add(readFixture(f, fixtureWorkerPayload))
	f.Add(readFixture(f, fixtureLegacyPayload))
	f.Add([]byte(payloadFor(subject)))
	f.Add([]byte(payloadFor(subject) + " {}"))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"` + subject + `","docker-manifest-digest":"x"},"type":"cosign container image signature"}}`))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"` + subject + `"},"type":"cosign container image signature"},"optional":{"a":[{"b":null}]}}`))
	s := newSigner(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		sig := sign(t, s, payload)
		err := cosign.Verify(payload, sig, subject, s)
		if err != nil {
			var ve *cosign.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *VerifyError: %v", err, err)
			}
			if errors.Is(err, cosign.ErrBadSignature) {
				t.Fatalf("a valid signature was refused: %v", err)
			}
			_ = err.Error()
			return
		}
		if len(payload) > cosign.MaxPayloadSize {
			t.Fatalf("accepted a payload of %d bytes", len(payload))
		}
		if err := cosign.Verify(payload, sig, other, s); !errors.Is(err, cosign.ErrWrongImage) {
			t.Fatalf("accepted payload verified for another subject: %v", err)
		}
	})
}
