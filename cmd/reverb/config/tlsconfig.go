package config

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ResolveTLS applies §10.5 and returns the certificate and key files to
// serve TLS with, or two empty strings for plain TCP. An explicit
// local_cert / local_pk (or REVERB_TLS_CERT / REVERB_TLS_KEY) wins; a
// certificate given without a key must hold the key too and is returned as
// both. Otherwise, when c.Hostname is set, {host}.crt and {host}.key are
// looked up in Herd's and then Valet's certificate directory under home
// (pass os.UserHomeDir(); on Windows Herd's directory is
// %USERPROFILE%\.config\herd\config\valet\Certificates). Explicit files that
// do not exist are an error. Call it at startup from any goroutine.
func ResolveTLS(c *Config, home string) (cert, key string, err error) {
	return resolveTLS(c, home, runtime.GOOS)
}

func resolveTLS(c *Config, home, goos string) (cert, key string, err error) {
	if c.TLS.Cert != "" || c.TLS.Key != "" {
		if c.TLS.Cert == "" {
			return "", "", fmt.Errorf("tls: local_pk %s is set without local_cert", c.TLS.Key)
		}
		cert, key = c.TLS.Cert, c.TLS.Key
		if key == "" {
			key = cert
		}
		for _, f := range []string{cert, key} {
			if _, err := os.Stat(f); err != nil {
				return "", "", fmt.Errorf("tls: %w", err)
			}
		}
		return cert, key, nil
	}
	host := hostPart(c.Hostname)
	if host == "" || home == "" {
		return "", "", nil
	}
	for _, dir := range certificateDirs(home, goos) {
		cert, key = filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
		if isFile(cert) && isFile(key) {
			return cert, key, nil
		}
	}
	return "", "", nil
}

// certificateDirs are where Laravel Herd and Valet keep the certificates
// they issue for *.test sites, in the order Reverb searches them.
func certificateDirs(home, goos string) []string {
	herd := filepath.Join(home, "Library", "Application Support", "Herd", "config", "valet", "Certificates")
	if goos == "windows" {
		herd = filepath.Join(home, ".config", "herd", "config", "valet", "Certificates")
	}
	return []string{herd, filepath.Join(home, ".config", "valet", "Certificates")}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// ServerTLSConfig is what the reverb command wraps its listener with: nil
// for plain TCP, else a tls.Config holding the certificate ResolveTLS
// picked, with an encrypted key decrypted with c.TLS.Passphrase. Client
// certificates are not requested (§10.5 does not require verify_peer).
func ServerTLSConfig(c *Config, home string) (*tls.Config, error) {
	cert, key, err := ResolveTLS(c, home)
	if err != nil || cert == "" {
		return nil, err
	}
	pair, err := loadKeyPair(cert, key, c.TLS.Passphrase)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// loadKeyPair reads a PEM certificate chain and its private key, which may
// sit in the same file and may be encrypted: PKCS#8 "ENCRYPTED PRIVATE KEY"
// (PBES2 with PBKDF2, AES-CBC or 3DES-CBC, what OpenSSL writes) or the
// legacy "Proc-Type: 4,ENCRYPTED" form. PHP's passphrase option accepts
// both, so a Reverb TLS setup keeps working unchanged.
func loadKeyPair(certFile, keyFile, passphrase string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	keyPEM := certPEM
	if keyFile != "" && keyFile != certFile {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("tls: %w", err)
		}
	}
	keyPEM, err = decryptKeyPEM(keyPEM, passphrase)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %s: %w", keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %s / %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// decryptKeyPEM returns the first private key block of data as unencrypted
// PEM; data without an encrypted key is returned as is.
func decryptKeyPEM(data []byte, passphrase string) ([]byte, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return data, nil
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		// RFC 1423 encryption is deprecated as weak, but older OpenSSL
		// setups still hold such keys; reading them is all we do.
		legacy := x509.IsEncryptedPEMBlock(block) //nolint:staticcheck
		if block.Type != "ENCRYPTED PRIVATE KEY" && !legacy {
			return data, nil
		}
		if passphrase == "" {
			return nil, errors.New("the private key is encrypted; set passphrase (REVERB_TLS_PASSPHRASE)")
		}
		var der []byte
		var err error
		typ := block.Type
		if legacy {
			der, err = x509.DecryptPEMBlock(block, []byte(passphrase)) //nolint:staticcheck
			if errors.Is(err, x509.IncorrectPasswordError) {
				err = errIncorrectPassphrase
			}
		} else {
			der, err = decryptPKCS8(block.Bytes, passphrase)
			typ = "PRIVATE KEY"
		}
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), nil
	}
}

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// ASN.1 shapes from RFC 8018 (PKCS #5 v2.1) and RFC 5958.
type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KeyDerivation pkix.AlgorithmIdentifier
	Encryption    pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo protected with PBES2
// (PBKDF2 with HMAC-SHA1/224/256/384/512; AES-CBC or 3DES-CBC). The old
// PBES1 schemes (MD5/SHA1 with DES or RC2) and scrypt are refused with a
// message saying how to re-encrypt. Lengths are checked before decrypting,
// so a damaged file is an error, never a panic.
func decryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted private key: unsupported scheme %v (re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	if !params.KeyDerivation.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted private key: unsupported key derivation %v (scrypt keys: re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)", params.KeyDerivation.Algorithm)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KeyDerivation.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	var prf func() hash.Hash
	switch alg := kdf.PRF.Algorithm; {
	case len(alg) == 0, alg.Equal(oidHMACSHA1):
		prf = sha1.New // the RFC 8018 default when prf is absent
	case alg.Equal(oidHMACSHA224):
		prf = sha256.New224
	case alg.Equal(oidHMACSHA256):
		prf = sha256.New
	case alg.Equal(oidHMACSHA384):
		prf = sha512.New384
	case alg.Equal(oidHMACSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("encrypted private key: unsupported PRF %v", alg)
	}
	var (
		keyLen   int
		newBlock func([]byte) (cipher.Block, error)
	)
	switch alg := params.Encryption.Algorithm; {
	case alg.Equal(oidAES128CBC):
		keyLen, newBlock = 16, aes.NewCipher
	case alg.Equal(oidAES192CBC):
		keyLen, newBlock = 24, aes.NewCipher
	case alg.Equal(oidAES256CBC):
		keyLen, newBlock = 32, aes.NewCipher
	case alg.Equal(oidDESEDE3CBC):
		keyLen, newBlock = 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("encrypted private key: unsupported cipher %v", alg)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, errors.New("encrypted private key: key length does not match the cipher")
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Encryption.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	key, err := pbkdf2.Key(prf, passphrase, kdf.Salt, kdf.Iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	block, err := newBlock(key)
	if err != nil {
		return nil, err
	}
	n := block.BlockSize()
	if len(iv) != n || len(info.Data) == 0 || len(info.Data)%n != 0 {
		return nil, errors.New("encrypted private key: malformed ciphertext")
	}
	out := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, info.Data)
	// A wrong passphrase almost always shows as broken PKCS#7 padding.
	pad := int(out[len(out)-1])
	if pad == 0 || pad > n {
		return nil, errIncorrectPassphrase
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errIncorrectPassphrase
		}
	}
	out = out[:len(out)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(out); err != nil {
		return nil, errIncorrectPassphrase
	}
	return out, nil
}

var errIncorrectPassphrase = errors.New("incorrect passphrase for the private key")
