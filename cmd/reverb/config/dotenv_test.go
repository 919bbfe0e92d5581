package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEnvValue(t *testing.T) {
	tests := []struct {
		raw  string
		want any
	}{
		{"true", true},
		{"TRUE", true},
		{"(true)", true},
		{"(True)", true},
		{"false", false},
		{"(FALSE)", false},
		{"null", nil},
		{"(null)", nil},
		{"NULL", nil},
		{"empty", ""},
		{"(Empty)", ""},
		{"", ""},
		{"8080", "8080"},
		{`"quoted"`, "quoted"},
		{`'single'`, "single"},
		{`"mismatched'`, `"mismatched'`},
		{`"`, `"`},
		{`""`, ""},
		{`'true'`, "true"}, // keyword check runs before unwrapping
		{"yes", "yes"},
		{" true", " true"},
	}
	for _, tt := range tests {
		if got := envValue(tt.raw); got != tt.want {
			t.Errorf("envValue(%q) = %#v, want %#v", tt.raw, got, tt.want)
		}
	}
}

func TestParseEnviron(t *testing.T) {
	got := parseEnviron([]string{"A=1", "B=x=y", "C=", "NOEQUALS", "=hidden"})
	want := map[string]string{"A": "1", "B": "x=y", "C": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseEnviron = %v, want %v", got, want)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDotenv(t *testing.T) {
	tests := []struct {
		name    string
		content string
		process map[string]string
		want    map[string]string
	}{
		{"plain", "A=1\nB=two\n", nil, map[string]string{"A": "1", "B": "two"}},
		{"blank lines and CRLF", "\r\n\nA=1\r\n\r\n  \nB=2", nil, map[string]string{"A": "1", "B": "2"}},
		{"full-line comments", "# first\n  # indented\nA=1\n#B=2\n", nil, map[string]string{"A": "1"}},
		{"trailing comment after unquoted", "A=value # note\nB=x\t# tab note\n", nil, map[string]string{"A": "value", "B": "x"}},
		{"hash inside unquoted value", "A=abc#def\nB=#comment only\n", nil, map[string]string{"A": "abc#def", "B": ""}},
		{"export prefix", "export A=1\nexport\tB=2\nexported=3\n", nil, map[string]string{"A": "1", "B": "2", "exported": "3"}},
		{"spaces around equals", "A = spaced value \n", nil, map[string]string{"A": "spaced value"}},
		{"empty values", "A=\nB=\"\"\nC=''\n", nil, map[string]string{"A": "", "B": "", "C": ""}},
		{"double quotes keep hash and spaces", `A="a # not a comment "` + "\n", nil, map[string]string{"A": "a # not a comment "}},
		{"double quote escapes", `A="line1\nline2\ttab \"q\" back\\slash \$HOME \x"`, nil,
			map[string]string{"A": "line1\nline2\ttab \"q\" back\\slash $HOME \\x"}},
		{"comment after quoted", `A="v" # c` + "\nB='w'\t#c\n", nil, map[string]string{"A": "v", "B": "w"}},
		{"multi-line double quoted", "A=\"first\nsecond\"\nB=3\n", nil, map[string]string{"A": "first\nsecond", "B": "3"}},
		{"multi-line single quoted", "A='first\nsecond'\n", nil, map[string]string{"A": "first\nsecond"}},
		{"single quotes are literal", `A='\n ${B} "x"'` + "\nB=1\n", nil, map[string]string{"A": `\n ${B} "x"`, "B": "1"}},
		{"interpolation from earlier entries", "REVERB_APP_KEY=abc\nVITE_REVERB_APP_KEY=\"${REVERB_APP_KEY}\"\nU=pre-${REVERB_APP_KEY}-post\n", nil,
			map[string]string{"REVERB_APP_KEY": "abc", "VITE_REVERB_APP_KEY": "abc", "U": "pre-abc-post"}},
		{"interpolation prefers the process env", "K=file\nV=${K}\n", map[string]string{"K": "proc"},
			map[string]string{"K": "file", "V": "proc"}},
		{"interpolation of unknown is empty", "V=\"x${NOPE}y\"\n", nil, map[string]string{"V": "xy"}},
		{"later entry wins", "A=1\nA=2\n", nil, map[string]string{"A": "2"}},
		{"bare name declares nothing", "LONELY\nA=1\n", nil, map[string]string{"A": "1"}},
		{"dots in names", "app.name=x\n", nil, map[string]string{"app.name": "x"}},
		{"utf-8 BOM", "\uFEFFA=1\n", nil, map[string]string{"A": "1"}},
		{"value with equals", "A=b=c\n", nil, map[string]string{"A": "b=c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), ".env", tt.content)
			got, err := loadDotenv(p, true, tt.process)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDotenvErrors(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{"unterminated double quote", "A=1\nB=\"open\nC=3\n", `line 2: B: missing closing "`},
		{"unterminated single quote", "A='open", "line 1: A: missing closing '"},
		{"junk after closing quote", `A="x"y`, `line 1: A: unexpected "y"`},
		{"invalid name", "MY VAR=1\n", `line 1: expected NAME=value, found "MY VAR=1"`},
		{"no name", "=value\n", "line 1: expected NAME=value"},
		{"line number after multi-line value", "A=\"x\ny\"\nB C\n", "line 3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), ".env", tt.content)
			_, err := loadDotenv(p, true, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDotenvMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.env")
	got, err := loadDotenv(missing, false, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing default file: got %v, %v; want empty, nil", got, err)
	}
	if _, err := loadDotenv(missing, true, nil); err == nil {
		t.Fatal("missing explicit file: want an error")
	}
}

// TestDotenvWhereGodotenvDiffers pins the phpdotenv (Laravel) reading of
// .env lines that github.com/joho/godotenv v1.5.1 reads differently; its
// result is in each case's comment. They are why this package keeps its
// own parser (see the commit that added this test).
func TestDotenvWhereGodotenvDiffers(t *testing.T) {
	tests := []struct {
		name    string
		content string
		process map[string]string
		want    map[string]string
	}{
		// godotenv: "S3crx" ($ET9 expanded as a variable, twice).
		{"bare $ is literal, unquoted", "REDIS_PASSWORD=S3cr$ET9x\n", nil, map[string]string{"REDIS_PASSWORD": "S3cr$ET9x"}},
		{"bare $ is literal, double-quoted", `REDIS_PASSWORD="S3cr$ET9x"` + "\n", nil, map[string]string{"REDIS_PASSWORD": "S3cr$ET9x"}},
		// godotenv: "" (it resolves only names defined earlier in the file).
		{"${VAR} from the process environment", "REDIS_URL=redis://${REDIS_HOST}:6379\n", map[string]string{"REDIS_HOST": "cache"},
			map[string]string{"REDIS_URL": "redis://cache:6379"}},
		// godotenv: "file" (Laravel's immutable repository lets the process win).
		{"process environment wins in ${VAR}", "K=file\nV=${K}\n", map[string]string{"K": "proc"}, map[string]string{"K": "file", "V": "proc"}},
		// godotenv: "${a}" (upper-case names only).
		{"lower-case names interpolate", "a=1\nB=${a}\n", nil, map[string]string{"a": "1", "B": "1"}},
		// godotenv: "tabthere".
		{`\t in double quotes is a tab`, `A="tab\there"` + "\n", nil, map[string]string{"A": "tab\there"}},
		// godotenv: an error for the whole file.
		{"a bare name declares nothing", "LONELY\nA=1\n", nil, map[string]string{"A": "1"}},
		{"UTF-8 byte order mark", "\uFEFFA=1\n", nil, map[string]string{"A": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadDotenv(writeFile(t, t.TempDir(), ".env", tt.content), true, tt.process)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
	// godotenv accepts "MY VAR=1" as the name "MY VAR"; phpdotenv refuses it.
	if _, err := loadDotenv(writeFile(t, t.TempDir(), ".env", "MY VAR=1\n"), true, nil); err == nil {
		t.Fatal(`"MY VAR=1": want an error, as phpdotenv gives`)
	}
}
