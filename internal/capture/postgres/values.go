package postgres

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Type OIDs with a JSON mapping other than a string (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// sessionParams fix the text output of the replication session, which
// pgoutput uses for every value: ISO dates, UTC, every float digit, hex
// bytea.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"application_name":   "syncgate",
}

// appendValue appends the JSON form of one column value, given in
// PostgreSQL's text output, to b:
//
//   - bool: true/false; smallint, integer, bigint, oid: a JSON number;
//   - real, double precision: a number, or the string "NaN", "Infinity",
//     "-Infinity";
//   - numeric: a string with every digit ("12.3400"), since a JSON number
//     read as a float64 would lose digits;
//   - json, jsonb: the value itself;
//   - timestamptz: an RFC 3339 string in UTC ("2026-11-22T10:00:00.123Z");
//     timestamp (no zone): the same without an offset
//     ("2026-11-22T10:00:00.123"), since none is known; infinity and BC
//     dates stay as PostgreSQL writes them;
//   - bytea: base64 (as encoding/json writes []byte);
//   - everything else (text, varchar, uuid, date, time, interval, arrays,
//     enums, …): its text form as a string.
func appendValue(b []byte, oid uint32, text []byte) []byte {
	switch oid {
	case oidBool:
		switch string(text) {
		case "t":
			return append(b, "true"...)
		case "f":
			return append(b, "false"...)
		}
	case oidInt2, oidInt4, oidInt8, oidOID:
		if isInteger(text) {
			return append(b, text...)
		}
	case oidFloat4, oidFloat8:
		if isJSONNumber(text) {
			return append(b, text...)
		}
	case oidJSON, oidJSONB:
		if json.Valid(text) {
			return append(b, text...)
		}
	case oidTimestamptz:
		if t, err := time.Parse("2006-01-02 15:04:05.999999999Z07", string(text)); err == nil {
			return appendString(b, t.UTC().Format(time.RFC3339Nano))
		}
		if t, err := time.Parse("2006-01-02 15:04:05.999999999Z07:00", string(text)); err == nil {
			return appendString(b, t.UTC().Format(time.RFC3339Nano))
		}
	case oidTimestamp:
		if t, err := time.Parse("2006-01-02 15:04:05.999999999", string(text)); err == nil {
			return appendString(b, t.Format("2006-01-02T15:04:05.999999999"))
		}
	case oidBytea:
		if h, ok := strings.CutPrefix(string(text), `\x`); ok {
			if raw, err := hex.DecodeString(h); err == nil {
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, raw)
				return append(b, '"')
			}
		}
	}
	return appendString(b, string(text))
}

func isInteger(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 1 && s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether s is a number as JSON writes it (PostgreSQL
// writes NaN and Infinity, which JSON has not).
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if n := digits(); n == 0 || n > 1 && s[start] == '0' {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
