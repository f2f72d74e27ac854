package cosign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/sample"
)

// Fixtures in testdata/, written by TestCosignInterop -update from
// signatures the real cosign made of the sample images.
const (
	fixturePub            = "cosign.pub"
	fixtureWorkerManifest = "worker.sig.json"
	fixtureWorkerPayload  = "worker.payload.json"
	fixtureLegacyManifest = "legacy.sig.json"
	fixtureLegacyPayload  = "legacy.payload.json"
)

type fixtures struct {
	pub                           []byte
	workerManifest, workerPayload []byte
	legacyManifest, legacyPayload []byte
	worker, legacy                string // subject digests
	workerSig, legacySig          []byte
	workerLayer                   cosign.Descriptor
	verifier                      signature.Verifier
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (regenerate with go test ./internal/cosignsig -run TestCosignInterop -update)", err)
	}
	return b
}

func loadFixtures(t testing.TB) fixtures {
	t.Helper()
	imgs := sampleImages(t)
	fx := fixtures{
		pub:            readFixture(t, fixturePub),
		workerManifest: readFixture(t, fixtureWorkerManifest),
		workerPayload:  readFixture(t, fixtureWorkerPayload),
		legacyManifest: readFixture(t, fixtureLegacyManifest),
		legacyPayload:  readFixture(t, fixtureLegacyPayload),
		worker:         digestOf(t, imgs, "demo/worker"),
		legacy:         digestOf(t, imgs, "demo/legacy"),
	}
	fx.verifier = loadVerifier(t, fx.pub)
	ws, err := cosign.Parse(fx.workerManifest)
	if err != nil || len(ws) != 1 {
		t.Fatalf("Parse(worker fixture) = %d signatures, %v", len(ws), err)
	}
	ls, err := cosign.Parse(fx.legacyManifest)
	if err != nil || len(ls) != 1 {
		t.Fatalf("Parse(legacy fixture) = %d signatures, %v", len(ls), err)
	}
	fx.workerSig, fx.legacySig, fx.workerLayer = ws[0].Signature, ls[0].Signature, ws[0].Payload
	return fx
}

func sampleImages(t testing.TB) []sample.Image {
	t.Helper()
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// digestOf returns the manifest digest of the sample image in repo.
func digestOf(t testing.TB, imgs []sample.Image, repo string) string {
	t.Helper()
	for _, im := range imgs {
		if im.Repo != repo {
			continue
		}
		if im.Image == nil {
			t.Fatalf("%s is an index", repo)
		}
		d, err := im.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	t.Fatalf("no sample image %s", repo)
	return ""
}

// newSigner returns an ECDSA P-256 signer-verifier like a cosign key.
func newSigner(t testing.TB) signature.SignerVerifier {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadSignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// otherKey is a verifier for a key that signed nothing.
func otherKey(t testing.TB) signature.Verifier { return newSigner(t) }

func sign(t testing.TB, s signature.Signer, payload []byte) []byte {
	t.Helper()
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// flip returns a copy of b with bit 0 of b[i] inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestParseCosignManifest(t *testing.T) {
	t.Parallel()
	fx := loadFixtures(t)
	if fx.workerLayer.MediaType != cosign.MediaTypeSimpleSigning {
		t.Errorf("media type %q", fx.workerLayer.MediaType)
	}
	if got := checked.Digest(fx.workerPayload); got != fx.workerLayer.Digest || int64(len(fx.workerPayload)) != fx.workerLayer.Size {
		t.Errorf("layer %+v does not describe the payload fixture (%s, %d bytes)", fx.workerLayer, got, len(fx.workerPayload))
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	fx := loadFixtures(t)
	other := newSigner(t)
	cases := []struct {
		name    string
		payload []byte
		sig     []byte
		subject string
		v       signature.Verifier
		want    error // nil: accepted
	}{
		{"cosign signature", fx.workerPayload, fx.workerSig, fx.worker, fx.verifier, nil},
		{"cosign signature of a docker v2 image", fx.legacyPayload, fx.legacySig, fx.legacy, fx.verifier, nil},
		{"wrong key", fx.workerPayload, fx.workerSig, fx.worker, other, cosign.ErrBadSignature},
		{"payload for another digest", fx.legacyPayload, fx.legacySig, fx.worker, fx.verifier, cosign.ErrWrongImage},
		{"checked for another subject", fx.workerPayload, fx.workerSig, fx.legacy, fx.verifier, cosign.ErrWrongImage},
		{"signature of another payload", fx.workerPayload, fx.legacySig, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"flipped first signature byte", fx.workerPayload, flip(fx.workerSig, 0), fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"flipped middle signature byte", fx.workerPayload, flip(fx.workerSig, len(fx.workerSig)/2), fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"flipped last signature byte", fx.workerPayload, flip(fx.workerSig, len(fx.workerSig)-1), fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"flipped first payload byte", flip(fx.workerPayload, 0), fx.workerSig, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"flipped payload byte in the digest", flip(fx.workerPayload, bytes.Index(fx.workerPayload, []byte(fx.worker))+20), fx.workerSig, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"truncated payload", fx.workerPayload[:len(fx.workerPayload)-1], fx.workerSig, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"payload with a trailing newline", append(bytes.Clone(fx.workerPayload), '\n'), fx.workerSig, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"empty signature", fx.workerPayload, nil, fx.worker, fx.verifier, cosign.ErrBadSignature},
		{"oversized signature", fx.workerPayload, make([]byte, cosign.MaxSignatureSize+1), fx.worker, fx.verifier, cosign.ErrTooLarge},
		{"oversized payload", make([]byte, cosign.MaxPayloadSize+1), fx.workerSig, fx.worker, fx.verifier, cosign.ErrTooLarge},
		{"no verifier", fx.workerPayload, fx.workerSig, fx.worker, nil, cosign.ErrInvalidArgument},
		{"subject not a digest", fx.workerPayload, fx.workerSig, "demo/worker:1.0", fx.verifier, cosign.ErrInvalidArgument},
		{"subject in upper case", fx.workerPayload, fx.workerSig, strings.ToUpper(fx.worker), fx.verifier, cosign.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := cosign.Verify(c.payload, c.sig, c.subject, c.v)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			var ve *cosign.VerifyError
			if !errors.As(err, &ve) || ve.Subject != c.subject {
				t.Fatalf("Verify = %#v, want a *VerifyError for subject %q", err, c.subject)
			}
			if c.want == cosign.ErrWrongImage && ve.Signed == "" {
				t.Errorf("VerifyError.Signed is empty for a wrong image")
			}
		})
	}
}

// payloadFor is a cosign payload for digest, as cosign formats it.
func payloadFor(digest string) string {
	return `{"critical":{"identity":{"docker-reference":"registry.example/demo/worker"},"image":{"docker-manifest-digest":"` + digest + `"},"type":"cosign container image signature"},"optional":null}`
}

// TestVerifyPayloadStrict signs crafted payloads with a valid key: a valid
// signature must not make an ambiguous or incomplete payload acceptable.
func TestVerifyPayloadStrict(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const e = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	crit := func(inner string) string { return `{"critical":{` + inner + `},"optional":null}` }
	const (
		id  = `"identity":{"docker-reference":"r"}`
		img = `"image":{"docker-manifest-digest":"` + d + `"}`
		typ = `"type":"cosign container image signature"`
	)
	cases := []struct {
		name, payload string
		want          error
	}{
		{"as cosign writes it", payloadFor(d), nil},
		{"optional annotations", `{"critical":{` + id + `,` + img + `,` + typ + `},"optional":{"creator":"ci","n":[1,{"x":null}]}}`, nil},
		{"no optional", `{"critical":{` + id + `,` + img + `,` + typ + `}}`, nil},
		{"no identity", crit(img + `,` + typ), nil},
		{"another digest", payloadFor(e), cosign.ErrWrongImage},
		{"digest in upper case", payloadFor(strings.ToUpper(d)), cosign.ErrWrongImage},
		{"duplicate digest, last one ours", crit(id + `,"image":{"docker-manifest-digest":"` + e + `","docker-manifest-digest":"` + d + `"},` + typ), cosign.ErrBadPayload},
		{"duplicate critical", `{"critical":{` + id + `,"image":{"docker-manifest-digest":"` + e + `"},` + typ + `},"critical":{` + id + `,` + img + `,` + typ + `}}`, cosign.ErrBadPayload},
		{"duplicate type", crit(id + `,` + img + `,"type":"x",` + typ), cosign.ErrBadPayload},
		{"case-folded duplicate", crit(id + `,` + img + `,` + typ + `,"Type":"x"`), cosign.ErrBadPayload},
		{"case variant of critical", `{"Critical":{` + id + `,` + img + `,` + typ + `}}`, cosign.ErrBadPayload},
		{"case variant of the digest key", crit(id + `,"image":{"Docker-Manifest-Digest":"` + d + `"},` + typ), cosign.ErrBadPayload},
		{"unknown critical field", crit(id + `,` + img + `,` + typ + `,"expires":"never"`), cosign.ErrBadPayload},
		{"unknown top-level field", `{"critical":{` + id + `,` + img + `,` + typ + `},"extra":1}`, cosign.ErrBadPayload},
		{"trailing data", payloadFor(d) + `{}`, cosign.ErrBadPayload},
		{"two documents", payloadFor(d) + payloadFor(d), cosign.ErrBadPayload},
		{"not JSON", `critical`, cosign.ErrBadPayload},
		{"empty", ``, cosign.ErrBadPayload},
		{"null", `null`, cosign.ErrBadPayload},
		{"no critical", `{"optional":{}}`, cosign.ErrBadPayload},
		{"no image", crit(id + `,` + typ), cosign.ErrBadPayload},
		{"no digest", crit(id + `,"image":{},` + typ), cosign.ErrBadPayload},
		{"null digest", crit(id + `,"image":{"docker-manifest-digest":null},` + typ), cosign.ErrBadPayload},
		{"digest not a string", crit(id + `,"image":{"docker-manifest-digest":1},` + typ), cosign.ErrBadPayload},
		{"no type", crit(id + `,` + img), cosign.ErrBadPayload},
		{"atomic container signature type", crit(id + `,` + img + `,"type":"atomic container signature"`), cosign.ErrWrongType},
		{"empty type", crit(id + `,` + img + `,"type":""`), cosign.ErrWrongType},
		{"invalid UTF-8", crit(id + `,` + img + `,"type":"cosign container image signature\xff"`), cosign.ErrBadPayload},
		{"deep optional", `{"critical":{` + id + `,` + img + `,` + typ + `},"optional":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, cosign.ErrBadPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := []byte(c.payload)
			err := cosign.Verify(p, sign(t, s, p), d, s)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify(%s): %v", c.payload, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify(%s) = %v, want %v", c.payload, err, c.want)
			}
		})
	}
}

// manifestWith is a cosign signature manifest with the given layers JSON.
func manifestWith(layers string) string {
	return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":` + layers + `}`
}

const (
	goodDigest = "sha256:ee40f7eb7274a8e49646d06679b1bd84e293ef5eccbc3b81b852cc26945d2dd5"
	goodSigB64 = "MEQCIF75xQeB9uoTapAIWsheADTw2urzyi6TNarHOBw6Zt7zAiAExgWyKP7NkWGof5E4KwQd7O2cUH5rEEdVbvt+Pk6e5g=="
)

// layerJSON is one signature layer with the given members replaced.
func layerJSON(mediaType, digest, size, annotations string) string {
	return `{"mediaType":` + mediaType + `,"size":` + size + `,"digest":` + digest + `,"annotations":` + annotations + `}`
}

func goodLayer() string {
	return layerJSON(`"`+cosign.MediaTypeSimpleSigning+`"`, `"`+goodDigest+`"`, "243", `{"`+cosign.AnnotationSignature+`":"`+goodSigB64+`"}`)
}

func TestParse(t *testing.T) {
	t.Parallel()
	mt := `"` + cosign.MediaTypeSimpleSigning + `"`
	dg := `"` + goodDigest + `"`
	ann := `{"` + cosign.AnnotationSignature + `":"` + goodSigB64 + `"}`
	many := strings.TrimSuffix(strings.Repeat(goodLayer()+",", cosign.MaxSignatures+1), ",")
	most := strings.TrimSuffix(strings.Repeat(goodLayer()+",", cosign.MaxSignatures), ",")
	cases := []struct {
		name     string
		manifest string
		want     error // nil: accepted
		n        int   // signatures when accepted
		layer    int   // ParseError.Layer when refused
	}{
		{"one layer", manifestWith("[" + goodLayer() + "]"), nil, 1, 0},
		{"two layers", manifestWith("[" + goodLayer() + "," + goodLayer() + "]"), nil, 2, 0},
		{"most layers", manifestWith("[" + most + "]"), nil, cosign.MaxSignatures, 0},
		{"no media type", `{"schemaVersion":2,"layers":[` + goodLayer() + `]}`, nil, 1, 0},
		{"docker v2 manifest", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[` + goodLayer() + `]}`, nil, 1, 0},
		{"too many layers", manifestWith("[" + many + "]"), cosign.ErrTooLarge, 0, -1},
		{"too large", manifestWith("[" + goodLayer() + "]" + strings.Repeat(" ", cosign.MaxManifestSize)), cosign.ErrTooLarge, 0, -1},
		{"no layers", manifestWith("[]"), cosign.ErrMalformed, 0, -1},
		{"null layers", manifestWith("null"), cosign.ErrMalformed, 0, -1},
		{"missing layers", `{"schemaVersion":2}`, cosign.ErrMalformed, 0, -1},
		{"LAYERS", `{"schemaVersion":2,"LAYERS":[` + goodLayer() + `]}`, cosign.ErrMalformed, 0, -1},
		{"layers and Layers", `{"Layers":[],"layers":[` + goodLayer() + `]}`, cosign.ErrMalformed, 0, -1},
		{"duplicate layers", `{"layers":[],"layers":[` + goodLayer() + `]}`, cosign.ErrMalformed, 0, -1},
		{"layers not an array", manifestWith(`{}`), cosign.ErrMalformed, 0, -1},
		{"trailing data", manifestWith("["+goodLayer()+"]") + "{}", cosign.ErrMalformed, 0, -1},
		{"not JSON", `sig`, cosign.ErrMalformed, 0, -1},
		{"empty", ``, cosign.ErrMalformed, 0, -1},
		{"array", `[]`, cosign.ErrMalformed, 0, -1},
		{"null", `null`, cosign.ErrMalformed, 0, -1},
		{"an index", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","layers":[` + goodLayer() + `]}`, cosign.ErrMalformed, 0, -1},
		{"media type not a string", `{"mediaType":1,"layers":[` + goodLayer() + `]}`, cosign.ErrMalformed, 0, -1},
		{"layer not an object", manifestWith(`[` + goodLayer() + `,"x"]`), cosign.ErrMalformed, 0, 1},
		{"null layer", manifestWith(`[null]`), cosign.ErrMalformed, 0, 0},
		{"layer of another media type", manifestWith(`[` + layerJSON(`"application/vnd.oci.image.layer.v1.tar+gzip"`, dg, "243", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"layer without media type", manifestWith(`[{"size":243,"digest":` + dg + `,"annotations":` + ann + `}]`), cosign.ErrMalformed, 0, 0},
		{"sha512 digest", manifestWith(`[` + layerJSON(mt, `"sha512:`+strings.Repeat("a", 128)+`"`, "243", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"upper-case digest", manifestWith(`[` + layerJSON(mt, strings.ToUpper(dg), "243", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"path in digest", manifestWith(`[` + layerJSON(mt, `"sha256:../../etc/passwd"`, "243", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"zero size", manifestWith(`[` + layerJSON(mt, dg, "0", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"negative size", manifestWith(`[` + layerJSON(mt, dg, "-1", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"fractional size", manifestWith(`[` + layerJSON(mt, dg, "2.5", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"size as a string", manifestWith(`[` + layerJSON(mt, dg, `"243"`, ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"huge size", manifestWith(`[` + layerJSON(mt, dg, "99999999999999999999", ann) + `]`), cosign.ErrMalformed, 0, 0},
		{"payload over the limit", manifestWith(`[` + layerJSON(mt, dg, fmt.Sprint(cosign.MaxPayloadSize+1), ann) + `]`), cosign.ErrTooLarge, 0, 0},
		{"no annotations", manifestWith(`[{"mediaType":` + mt + `,"size":243,"digest":` + dg + `}]`), cosign.ErrMalformed, 0, 0},
		{"no signature annotation", manifestWith(`[` + layerJSON(mt, dg, "243", `{"x":"y"}`) + `]`), cosign.ErrMalformed, 0, 0},
		{"empty signature", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":""}`) + `]`), cosign.ErrMalformed, 0, 0},
		{"signature not base64", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":"!!!!"}`) + `]`), cosign.ErrMalformed, 0, 0},
		{"url-safe base64", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":"-_-_"}`) + `]`), cosign.ErrMalformed, 0, 0},
		{"signature over the limit", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":"`+base64.StdEncoding.EncodeToString(make([]byte, cosign.MaxSignatureSize+3))+`"}`) + `]`), cosign.ErrTooLarge, 0, 0},
		{"annotation not a string", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":1}`) + `]`), cosign.ErrMalformed, 0, 0},
		{"case-folded duplicate annotation", manifestWith(`[` + layerJSON(mt, dg, "243", `{"`+cosign.AnnotationSignature+`":"`+goodSigB64+`","DEV.cosignproject.cosign/signature":"AAAA"}`) + `]`), cosign.ErrMalformed, 0, -1},
		{"second layer bad", manifestWith(`[` + goodLayer() + `,` + layerJSON(mt, dg, "-5", ann) + `]`), cosign.ErrMalformed, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sigs, err := cosign.Parse([]byte(c.manifest))
			if c.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(sigs) != c.n {
					t.Fatalf("Parse: %d signatures, want %d", len(sigs), c.n)
				}
				for _, s := range sigs {
					if s.Payload.Digest != goodDigest || s.Payload.Size != 243 || s.Payload.MediaType != cosign.MediaTypeSimpleSigning {
						t.Errorf("payload %+v", s.Payload)
					}
					if base64.StdEncoding.EncodeToString(s.Signature) != goodSigB64 {
						t.Errorf("signature %x", s.Signature)
					}
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
			var pe *cosign.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %#v, want a *ParseError", err)
			}
			if pe.Layer != c.layer {
				t.Errorf("ParseError.Layer = %d, want %d (%v)", pe.Layer, c.layer, err)
			}
			if sigs != nil {
				t.Errorf("Parse returned signatures with an error")
			}
		})
	}
}
