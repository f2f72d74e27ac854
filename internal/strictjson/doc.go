// Package strictjson decodes JSON that was, or will be, covered by a signature,
// refusing every input that encoding/json would read in more than one way.
//
// encoding/json accepts duplicate keys (the last one wins), matches keys to
// struct fields case-insensitively ("NAME" fills the field tagged "name"),
// ignores unknown fields and, in json.Decoder, leaves trailing data unread. Two
// parsers, or two versions of one, can then read different values from the same
// signed bytes. Unmarshal and Check reject all of that: each document has exactly
// one meaning (THREATS.md rule 5).
//
// Every rejection is an *Error carrying a JSON pointer to the place at fault and
// wrapping one of the sentinel errors, to be tested with errors.Is.
package strictjson
