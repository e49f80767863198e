package auth

import "testing"

func TestBearerToken(t *testing.T) {
	tests := []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER abc", "abc"},
		{"bEaReR abc", "abc"},
		{"Bearer   abc  ", "abc"},
		{"Bearer ", ""},
		{"Bearer", ""},
		{"Bearerabc", ""},
		{"Basic YWxhZGRpbjpvcGVu", ""},
		{"Bearers abc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := BearerToken(tt.header); got != tt.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}
