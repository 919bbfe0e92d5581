package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The files in testdata/tls are a throw-away self-signed P-256 certificate
// for reverb.test and its key, made with OpenSSL 3:
//
//	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//	  -keyout plain.key -out cert.pem -days 36500 -subj /CN=reverb.test \
//	  -addext subjectAltName=DNS:reverb.test
//	openssl pkcs8 -topk8 -in plain.key -out pkcs8-aes256.key -v2 aes-256-cbc -passout pass:s3cret
//	openssl pkcs8 -topk8 -in plain.key -out pkcs8-aes128-sha1.key -v2 aes-128-cbc -v2prf hmacWithSHA1 -passout pass:s3cret
//	openssl pkcs8 -topk8 -in plain.key -out pkcs8-des3.key -v2 des3 -passout pass:s3cret
//	openssl pkcs8 -topk8 -in plain.key -out pkcs8-aes256-sha512.key -v2 aes-256-cbc -v2prf hmacWithSHA512 -passout pass:s3cret
//	openssl pkcs8 -topk8 -in plain.key -out pkcs8-scrypt.key -scrypt -passout pass:s3cret
//	openssl ec -in plain.key -aes128 -passout pass:s3cret -out legacy-aes128.key
//	cat cert.pem plain.key > combined.pem; cat cert.pem pkcs8-aes256.key > combined-encrypted.pem
const fixturePass = "s3cret"

func fixture(name string) string { return filepath.Join(testdataAbs, "tls", name) }

func TestResolveTLSExplicit(t *testing.T) {
	cert, key := fixture("cert.pem"), fixture("plain.key")
	tests := []struct {
		name              string
		tls               TLSConfig
		wantCert, wantKey string
		wantErr           string
	}{
		{"cert and key", TLSConfig{Cert: cert, Key: key}, cert, key, ""},
		{"cert holding the key", TLSConfig{Cert: fixture("combined.pem")}, fixture("combined.pem"), fixture("combined.pem"), ""},
		{"key without cert", TLSConfig{Key: key}, "", "", "local_pk " + key + " is set without local_cert"},
		{"missing cert file", TLSConfig{Cert: fixture("nope.pem"), Key: key}, "", "", "nope.pem"},
		{"missing key file", TLSConfig{Cert: cert, Key: fixture("nope.key")}, "", "", "nope.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A Herd certificate for the hostname exists but explicit files win.
			home := t.TempDir()
			writeFile(t, filepath.Join(home, "Library/Application Support/Herd/config/valet/Certificates"), "app.test.crt", "x")
			writeFile(t, filepath.Join(home, "Library/Application Support/Herd/config/valet/Certificates"), "app.test.key", "x")
			c := &Config{Hostname: "app.test", TLS: tt.tls}
			gotCert, gotKey, err := ResolveTLS(c, home)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || gotCert != tt.wantCert || gotKey != tt.wantKey {
				t.Fatalf("got %q, %q, %v; want %q, %q", gotCert, gotKey, err, tt.wantCert, tt.wantKey)
			}
		})
	}
}

func TestResolveTLSHerdValet(t *testing.T) {
	herd := filepath.Join("Library", "Application Support", "Herd", "config", "valet", "Certificates")
	herdWindows := filepath.Join(".config", "herd", "config", "valet", "Certificates")
	valet := filepath.Join(".config", "valet", "Certificates")
	tests := []struct {
		name     string
		goos     string
		files    []string // relative to home
		hostname string
		wantDir  string // "" = plain
	}{
		{"herd", "darwin", []string{herd + "/app.test.crt", herd + "/app.test.key"}, "app.test", herd},
		{"herd before valet", "darwin", []string{herd + "/app.test.crt", herd + "/app.test.key", valet + "/app.test.crt", valet + "/app.test.key"}, "app.test", herd},
		{"valet", "linux", []string{valet + "/app.test.crt", valet + "/app.test.key"}, "app.test", valet},
		{"herd lacks the key", "darwin", []string{herd + "/app.test.crt", valet + "/app.test.crt", valet + "/app.test.key"}, "app.test", valet},
		{"hostname as URL", "darwin", []string{herd + "/app.test.crt", herd + "/app.test.key"}, "https://app.test:8080/", herd},
		{"herd on windows", "windows", []string{herdWindows + "/app.test.crt", herdWindows + "/app.test.key"}, "app.test", herdWindows},
		{"mac herd path ignored on windows", "windows", []string{herd + "/app.test.crt", herd + "/app.test.key"}, "app.test", ""},
		{"other host", "darwin", []string{herd + "/other.test.crt", herd + "/other.test.key"}, "app.test", ""},
		{"no hostname", "darwin", []string{herd + "/app.test.crt", herd + "/app.test.key"}, "", ""},
		{"directory named like the key", "darwin", []string{herd + "/app.test.crt", herd + "/app.test.key/x"}, "app.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, home, f, "pem")
			}
			cert, key, err := resolveTLS(&Config{Hostname: hostPart(tt.hostname)}, home, tt.goos)
			if err != nil {
				t.Fatal(err)
			}
			var wantCert, wantKey string
			if tt.wantDir != "" {
				wantCert = filepath.Join(home, tt.wantDir, "app.test.crt")
				wantKey = filepath.Join(home, tt.wantDir, "app.test.key")
			}
			if cert != wantCert || key != wantKey {
				t.Fatalf("got %q, %q; want %q, %q", cert, key, wantCert, wantKey)
			}
		})
	}
}

func TestLoadKeyPair(t *testing.T) {
	tests := []struct {
		cert, key, pass string
		wantErr         string
	}{
		{"cert.pem", "plain.key", "", ""},
		{"cert.pem", "plain.key", "unused", ""},
		{"combined.pem", "", "", ""},
		{"cert.pem", "pkcs8-aes256.key", fixturePass, ""},
		{"cert.pem", "pkcs8-aes128-sha1.key", fixturePass, ""},
		{"cert.pem", "pkcs8-des3.key", fixturePass, ""},
		{"cert.pem", "pkcs8-aes256-sha512.key", fixturePass, ""},
		{"cert.pem", "pkcs8-scrypt.key", fixturePass, "unsupported key derivation"},
		{"cert.pem", "legacy-aes128.key", fixturePass, ""},
		{"combined-encrypted.pem", "", fixturePass, ""},
		{"cert.pem", "pkcs8-aes256.key", "", "the private key is encrypted"},
		{"cert.pem", "pkcs8-aes256.key", "wrong", "incorrect passphrase"},
		{"cert.pem", "pkcs8-des3.key", "wrong", "incorrect passphrase"},
		{"cert.pem", "legacy-aes128.key", "wrong", "incorrect passphrase"},
		{"cert.pem", "cert.pem", "", "tls:"}, // no key at all
	}
	for _, tt := range tests {
		t.Run(tt.key+"/"+tt.cert+"/"+tt.pass, func(t *testing.T) {
			key := ""
			if tt.key != "" {
				key = fixture(tt.key)
			}
			pair, err := loadKeyPair(fixture(tt.cert), key, tt.pass)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// tls.X509KeyPair already checked that the key matches the certificate.
			if pair.Leaf == nil || pair.Leaf.Subject.CommonName != "reverb.test" {
				t.Fatalf("leaf %+v", pair.Leaf)
			}
		})
	}
}

// TestDecryptPKCS8Malformed feeds decryptPKCS8 a well-formed PBES2 key
// whose IV or ciphertext has the wrong length. It must return an error: the
// library weighed against this code (github.com/youmark/pkcs8, 2024-07-26)
// panics on both (cipher.NewCBCDecrypter and CryptBlocks are handed the
// lengths unchecked), which here would crash `reverb start` on a damaged
// key file instead of naming it.
func TestDecryptPKCS8Malformed(t *testing.T) {
	data, err := os.ReadFile(fixture("pkcs8-aes256.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("fixture is not an encrypted PKCS#8 key")
	}
	if _, err := decryptPKCS8(block.Bytes, fixturePass); err != nil {
		t.Fatalf("unmodified fixture: %v", err)
	}
	parse := func() (encryptedPrivateKeyInfo, pbes2Params) {
		var info encryptedPrivateKeyInfo
		var params pbes2Params
		if _, err := asn1.Unmarshal(block.Bytes, &info); err != nil {
			t.Fatal(err)
		}
		if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
			t.Fatal(err)
		}
		return info, params
	}
	marshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	shortIV, params := parse()
	params.Encryption.Parameters = asn1.RawValue{FullBytes: marshal([]byte("8 bytes!"))}
	shortIV.Algorithm.Parameters = asn1.RawValue{FullBytes: marshal(params)}

	truncated, _ := parse()
	truncated.Data = truncated.Data[:len(truncated.Data)-3]

	for name, info := range map[string]encryptedPrivateKeyInfo{"8-byte IV": shortIV, "ciphertext not whole blocks": truncated} {
		t.Run(name, func(t *testing.T) {
			_, err := decryptPKCS8(marshal(info), fixturePass)
			if err == nil || !strings.Contains(err.Error(), "malformed ciphertext") {
				t.Fatalf("err = %v, want malformed ciphertext", err)
			}
		})
	}
}

// TestServerTLSConfigHandshake serves a real TLS handshake with the
// configuration the reverb command builds, using the encrypted fixture key.
func TestServerTLSConfigHandshake(t *testing.T) {
	c := &Config{TLS: TLSConfig{Cert: fixture("cert.pem"), Key: fixture("pkcs8-aes256.key"), Passphrase: fixturePass}}
	cfg, err := ServerTLSConfig(c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_, err = conn.Write([]byte("hello"))
		done <- err
	}()

	pemBytes, err := os.ReadFile(fixture("cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "reverb.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	plain, err := ServerTLSConfig(&Config{}, t.TempDir())
	if err != nil || plain != nil {
		t.Fatalf("plain config: %v, %v; want nil, nil", plain, err)
	}
}
