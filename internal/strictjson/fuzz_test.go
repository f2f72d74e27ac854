package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, c := range rejectCases {
		f.Add([]byte(c.in))
	}
	for _, s := range []string{
		`{"name":"a","version":1,"artifacts":[{"digest":"d","size":1,"annotations":{"k":"v"}}],"extra":{"a":[1]},"any":{"b":null},"ptr":{"digest":"p"},"counts":{"7":"x"},"pair":[1,2],"level":"low","labels":{"l":"high"},"Untagged":"u"}`,
		`{"any":[1.5e308,-0,"\u00e9",true,false,null]}`,
		`{"when":"2026-01-01T00:00:00Z","whenPtr":"2026-01-01T00:00:00.5+14:00","bytes":"aGVsbG8=","float":1e-7,"uint":255,"str":"12","iface":{"a":[1,{"b":null}]},"nums":[1,2.5e3],"slots":{"a":"low","b":null}}`,
		`{"when":"2026-01-01T24:00:00Z"}`, `{"when":"\u0032026-01-02T03:04:05Z"}`, `{"whenPtr":"2026-01-02T03:04:05\u005a"}`, `{"when":null,"whenPtr":null}`, `{"bytes":"aGVsbG8"}`, `{"uint":256}`, `{"str":12}`, `{"float":1e400}`,
		`[]`, `{}`, `"s"`, `0`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzUnmarshal: no panics, every rejection is an *Error, and whatever
// Unmarshal accepts encoding/json and Check accept too, with the same value.
func FuzzUnmarshal(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var got doc
		err := Unmarshal(data, &got)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			_ = err.Error()
			return
		}
		var std doc
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("Unmarshal accepted what encoding/json rejects: %v", err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("got %+v, encoding/json %+v", got, std)
		}
		if err := Check(data); err != nil {
			t.Fatalf("Unmarshal accepted what Check rejects: %v", err)
		}
	})
}

// FuzzCheck: no panics, every rejection is an *Error, and whatever Check
// accepts is valid JSON.
func FuzzCheck(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			_ = err.Error()
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Check accepted invalid JSON %q", data)
		}
	})
}

// FuzzDecode: whatever Check accepts, Decode decodes to what json.Unmarshal
// gives, or fails as it fails.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data) != nil {
			return
		}
		var got, std doc
		err := Decode(data, &got)
		stdErr := json.Unmarshal(data, &std)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("Decode: %v, json.Unmarshal: %v", err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(got, std) {
			t.Fatalf("got %+v, encoding/json %+v", got, std)
		}
	})
}
