package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// envValue converts a raw environment string the way Laravel's env() helper
// does (framework Support/Env.php), so settings read from the environment mean
// what they mean to a PHP Reverb: the keywords true/false/null/empty (bare or
// in parentheses, any case) become bool, nil and "", and a value wrapped in
// matching single or double quotes is unwrapped. The keyword check runs before
// the unwrapping, so "'true'" stays the string "true" (relevant for the
// strict rate_limiting.enabled check, §8.3).
func envValue(raw string) any {
	switch strings.ToLower(raw) {
	case "true", "(true)":
		return true
	case "false", "(false)":
		return false
	case "empty", "(empty)":
		return ""
	case "null", "(null)":
		return nil
	}
	if n := len(raw); n >= 2 && (raw[0] == '"' || raw[0] == '\'') && raw[n-1] == raw[0] {
		return raw[1 : n-1]
	}
	return raw
}

// parseEnviron splits os.Environ()-style "KEY=value" entries into a map.
// Entries without "=" carry no value and are skipped.
func parseEnviron(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// loadDotenv reads a .env file and returns its entries as raw strings (before
// env() conversion). A missing file is an error only when explicit is set,
// because Laravel also starts fine without a .env. ${VAR} references resolve
// against the process environment first: Laravel loads .env into an immutable
// repository, so a variable already set in the process wins there too.
func loadDotenv(path string, explicit bool, process map[string]string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("env file: %w", err)
	}
	vars, err := parseDotenv(string(data), func(name string) (string, bool) {
		v, ok := process[name]
		return v, ok
	})
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return vars, nil
}

// dotenvParser walks a whole .env text at once because double- and
// single-quoted values may span several lines.
type dotenvParser struct {
	src    string
	pos    int
	line   int
	vars   map[string]string
	lookup func(string) (string, bool)
}

// parseDotenv parses .env text in the dialect phpdotenv accepts for Laravel:
// blank lines, full-line and " #" trailing comments, an optional "export "
// prefix, unquoted, 'single-quoted' (literal) and "double-quoted" values
// (escapes \n \r \t \" \\ \$, may span lines), and ${VAR} interpolation in
// unquoted and double-quoted values. lookup resolves names not defined
// earlier in the file; unknown names expand to "".
func parseDotenv(src string, lookup func(string) (string, bool)) (map[string]string, error) {
	p := &dotenvParser{src: strings.TrimPrefix(src, "\uFEFF"), line: 1, vars: map[string]string{}, lookup: lookup}
	for {
		p.skipBlank()
		if p.pos >= len(p.src) {
			return p.vars, nil
		}
		if p.src[p.pos] == '#' {
			p.skipLine()
			continue
		}
		if err := p.entry(); err != nil {
			return nil, fmt.Errorf("line %d: %w", p.line, err)
		}
	}
}

func (p *dotenvParser) skipBlank() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '\n':
			p.line++
		case ' ', '\t', '\r':
		default:
			return
		}
		p.pos++
	}
}

func (p *dotenvParser) skipSpaces() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

// skipLine moves to the start of the next line.
func (p *dotenvParser) skipLine() {
	if i := strings.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
		p.pos += i + 1
		p.line++
		return
	}
	p.pos = len(p.src)
}

func (p *dotenvParser) entry() error {
	if rest := p.src[p.pos:]; strings.HasPrefix(rest, "export ") || strings.HasPrefix(rest, "export\t") {
		p.pos += len("export")
		p.skipSpaces()
	}
	start := p.pos
	for p.pos < len(p.src) && isEnvNameByte(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[start:p.pos]
	p.skipSpaces()
	if p.pos >= len(p.src) || p.src[p.pos] == '\n' || p.src[p.pos] == '\r' || p.src[p.pos] == '#' {
		if name == "" {
			return errors.New("expected a variable name")
		}
		// A bare name without "=" declares nothing; phpdotenv accepts it.
		p.skipLine()
		return nil
	}
	if name == "" || p.src[p.pos] != '=' {
		return fmt.Errorf("expected NAME=value, found %q", firstLine(p.src[start:]))
	}
	p.pos++
	p.skipSpaces()
	var (
		value string
		err   error
	)
	if p.pos < len(p.src) && (p.src[p.pos] == '"' || p.src[p.pos] == '\'') {
		value, err = p.quoted(name)
	} else {
		value = p.unquoted()
	}
	if err != nil {
		return err
	}
	p.vars[name] = value
	return nil
}

func isEnvNameByte(c byte) bool {
	return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// unquoted reads the rest of the line; " #" starts a comment, as in phpdotenv,
// so a '#' glued to the value ("a#b") is part of it.
func (p *dotenvParser) unquoted() string {
	end := strings.IndexByte(p.src[p.pos:], '\n')
	if end < 0 {
		end = len(p.src) - p.pos
	}
	raw := p.src[p.pos : p.pos+end]
	p.pos += end
	if strings.HasPrefix(raw, "#") {
		raw = ""
	}
	for i := 1; i < len(raw); i++ {
		if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
			raw = raw[:i]
			break
		}
	}
	return p.interpolate(strings.TrimSpace(raw))
}

// quoted reads a quoted value starting at the opening quote, then requires
// the rest of the line to be blank or a comment.
func (p *dotenvParser) quoted(name string) (string, error) {
	q := p.src[p.pos]
	startLine := p.line
	p.pos++
	var b strings.Builder
	closed := false
	for p.pos < len(p.src) && !closed {
		c := p.src[p.pos]
		switch {
		case c == q:
			closed = true
			p.pos++
			continue
		case c == '\n':
			p.line++
		case q == '"' && c == '\\' && p.pos+1 < len(p.src):
			p.pos++
			switch e := p.src[p.pos]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '"', '\\', '$':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			p.pos++
			continue
		case q == '"' && c == '$' && strings.HasPrefix(p.src[p.pos:], "${"):
			end := strings.IndexByte(p.src[p.pos:], '}')
			if end < 0 {
				return "", fmt.Errorf("%s: unterminated ${ in value", name)
			}
			b.WriteString(p.resolve(p.src[p.pos+2 : p.pos+end]))
			p.pos += end + 1
			continue
		}
		b.WriteByte(c)
		p.pos++
	}
	if !closed {
		p.line = startLine // report where the value starts, not EOF
		return "", fmt.Errorf("%s: missing closing %c", name, q)
	}
	p.skipSpaces()
	if p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '#', '\n', '\r':
		default:
			return "", fmt.Errorf("%s: unexpected %q after the closing quote", name, firstLine(p.src[p.pos:]))
		}
	}
	p.skipLine()
	return b.String(), nil
}

// interpolate expands ${VAR} references in an unquoted value.
func (p *dotenvParser) interpolate(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(p.resolve(s[i+2 : i+end]))
		s = s[i+end+1:]
	}
	b.WriteString(s)
	return b.String()
}

func (p *dotenvParser) resolve(name string) string {
	name = strings.TrimSpace(name)
	if p.lookup != nil {
		if v, ok := p.lookup(name); ok {
			return v
		}
	}
	return p.vars[name]
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
