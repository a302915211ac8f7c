package winos

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestCommandEncodesScriptAsUTF16(t *testing.T) {
	script := "Write-Output 'Grüße – ok'"
	name, args := Command(script)
	if name != "powershell.exe" || args[len(args)-2] != "-EncodedCommand" {
		t.Fatalf("command = %s %q", name, args)
	}
	b, err := base64.StdEncoding.DecodeString(args[len(args)-1])
	if err != nil || len(b)%2 != 0 {
		t.Fatalf("encoded command: %v (%d bytes)", err, len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	got := string(utf16.Decode(u))
	if !strings.HasPrefix(got, prelude) || !strings.HasSuffix(got, script) {
		t.Errorf("decoded script = %q", got)
	}
}
