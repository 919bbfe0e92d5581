package config

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/goreverb/reverb/pusher"
)

// DevAppFileName is the file in the state directory that keeps the
// development app's credentials between starts.
const DevAppFileName = "dev-app.json"

// devCredentials is the content of DevAppFileName.
type devCredentials struct {
	ID     string `json:"app_id"`
	Key    string `json:"key"`
	Secret string `json:"secret"`
}

// devApp builds the env app (REVERB_APP_* limits still apply) with the
// development credentials kept in c.StateDir: read from DevAppFileName when
// it exists, else generated the way `reverb:install` generates them (a
// 6-digit id, 20-character lowercase alphanumeric key and secret) and saved
// there, so they survive restarts. A file that holds no complete
// credentials is an error: replacing it would silently break every frontend
// configured against it. A file that cannot be read (another user's in a
// shared /tmp/reverb) or credentials that cannot be saved (a read-only
// state directory) are not: fresh credentials are served and c.DevFileErr
// says why they will not last.
func devApp(env appSource, c *Config) (pusher.App, error) {
	path := filepath.Join(c.StateDir, DevAppFileName)
	cred, err := readDevCredentials(path)
	var invalid *invalidDevFileError
	switch {
	case err == nil:
		c.DevFile = path
	case errors.As(err, &invalid):
		return pusher.App{}, err
	case errors.Is(err, fs.ErrNotExist):
		if cred, err = generateDevCredentials(); err != nil {
			return pusher.App{}, err
		}
		saved, err := saveDevCredentials(path, cred)
		if err != nil {
			c.DevFileErr = err
		} else {
			cred, c.DevFile = saved, path
		}
	default:
		// Unreadable, e.g. another user's file in a shared /tmp/reverb:
		// serve fresh credentials and say why they will not last.
		if cred, err = generateDevCredentials(); err != nil {
			return pusher.App{}, err
		}
		c.DevFileErr = fmt.Errorf("development app: %w", err)
	}
	env.ids = map[string]string{
		"REVERB_APP_ID":     cred.ID,
		"REVERB_APP_KEY":    cred.Key,
		"REVERB_APP_SECRET": cred.Secret,
	}
	return buildApp(env)
}

func readDevCredentials(path string) (devCredentials, error) {
	var cred devCredentials
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) { // the state dir is a file: nothing can be kept there
			return cred, fs.ErrNotExist
		}
		return cred, err
	}
	if err := json.Unmarshal(data, &cred); err != nil || cred.ID == "" || cred.Key == "" || cred.Secret == "" {
		return devCredentials{}, &invalidDevFileError{path}
	}
	return cred, nil
}

// invalidDevFileError: the credentials file exists but does not hold
// complete credentials.
type invalidDevFileError struct{ path string }

func (e *invalidDevFileError) Error() string {
	return fmt.Sprintf("development app: %s does not hold app_id, key and secret; delete it to generate a new development app", e.path)
}

// saveDevCredentials creates path holding cred, readable by its owner only
// (it holds the secret). When another process created it first (several
// servers started at once on one state directory), that one's credentials
// are returned so that all of them serve the same app: the file appears
// complete or not at all, as it is written aside and then hard-linked into
// place, which fails when the name already exists.
func saveDevCredentials(path string, cred devCredentials) (devCredentials, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cred, fmt.Errorf("keeping the development app: %w", err)
	}
	data, _ := json.MarshalIndent(cred, "", "  ")
	tmp, err := os.CreateTemp(dir, ".dev-app-*")
	if err != nil {
		return cred, fmt.Errorf("keeping the development app: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return readDevCredentials(path)
	}
	if err != nil {
		return cred, fmt.Errorf("keeping the development app: %w", err)
	}
	return cred, nil
}

func generateDevCredentials() (devCredentials, error) {
	var parts [4]string
	for i, spec := range []struct {
		alphabet string
		n        int
	}{{"123456789", 1}, {"0123456789", 5}, {lowerAlnum, 20}, {lowerAlnum, 20}} {
		var err error
		if parts[i], err = randomString(spec.alphabet, spec.n); err != nil {
			return devCredentials{}, err
		}
	}
	// The id is like random_int(100000, 999999).
	return devCredentials{ID: parts[0] + parts[1], Key: parts[2], Secret: parts[3]}, nil
}

const lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(alphabet string, n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		r, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating development app credentials: %w", err)
		}
		b[i] = alphabet[r.Int64()]
	}
	return string(b), nil
}

// DevEnv is the block of .env lines a Laravel app needs to use the
// development app of c (c.Dev): the REVERB_* variables Laravel's
// broadcaster reads and the VITE_REVERB_* ones Echo reads, the way
// `php artisan reverb:install` writes them. REVERB_HOST is c.Hostname, or
// localhost when none is set; REVERB_SCHEME is https when secure (the
// server terminates TLS).
func DevEnv(c *Config, secure bool) string {
	a := c.Apps[0]
	host := c.Hostname
	if host == "" {
		host = "localhost"
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BROADCAST_CONNECTION=reverb\n\n")
	fmt.Fprintf(&b, "REVERB_APP_ID=%s\nREVERB_APP_KEY=%s\nREVERB_APP_SECRET=%s\n", a.ID, a.Key, a.Secret)
	fmt.Fprintf(&b, "REVERB_HOST=%s\nREVERB_PORT=%s\nREVERB_SCHEME=%s\n", strconv.Quote(host), strconv.Itoa(c.Port), scheme)
	if c.Path != "" {
		fmt.Fprintf(&b, "REVERB_SERVER_PATH=%s\n", c.Path[1:])
	}
	b.WriteString("\n")
	for _, name := range []string{"APP_KEY", "HOST", "PORT", "SCHEME"} {
		fmt.Fprintf(&b, "VITE_REVERB_%s=\"${REVERB_%s}\"\n", name, name)
	}
	return b.String()
}
