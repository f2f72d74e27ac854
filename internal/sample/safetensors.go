package sample

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
)

// ModelDataSize is the size of the tensor data in the sample
// model.safetensors (256 KiB); the file adds an 8-byte length and a JSON
// header in front of it.
const ModelDataSize = 256 << 10

// tensor is one entry of the sample model, in file order.
type tensor struct {
	name  string
	shape []int
}

// modelTensors are float32 tensors whose sizes add up to ModelDataSize:
// (248*128 + 128*128 + 128*128 + 8*128) * 4 bytes.
var modelTensors = []tensor{
	{"embeddings.weight", []int{248, 128}},
	{"encoder.0.weight", []int{128, 128}},
	{"encoder.1.weight", []int{128, 128}},
	{"classifier.weight", []int{8, 128}},
}

// safetensors returns a valid safetensors file: a little-endian uint64
// header length, a JSON header padded with spaces to a multiple of 8, then
// the F32 tensor data. The values are small seeded floats (magnitude
// between 2^-9 and 2^-5, either sign), made by bit arithmetic so they are
// the same on every platform.
func safetensors() ([]byte, error) {
	type info struct {
		Dtype       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range modelTensors {
		n := int64(4)
		for _, d := range t.shape {
			n *= int64(d)
		}
		header[t.name] = info{Dtype: "F32", Shape: t.shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	hdr, err := json.Marshal(header) // map keys come out sorted
	if err != nil {
		return nil, err
	}
	if pad := len(hdr) % 8; pad != 0 {
		hdr = append(hdr, bytes.Repeat([]byte(" "), 8-pad)...)
	}

	data := seeded("model.safetensors", int(off))
	for i := 0; i+4 <= len(data); i += 4 {
		u := binary.LittleEndian.Uint32(data[i:])
		sign := u & 0x8000_0000
		exp := uint32(118) + (u>>23)&3 // biased exponent 118..121, so 2^-9 <= |x| < 2^-5
		binary.LittleEndian.PutUint32(data[i:], sign|exp<<23|u&0x7f_ffff)
	}

	out := make([]byte, 0, 8+len(hdr)+len(data))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, data...), nil
}
