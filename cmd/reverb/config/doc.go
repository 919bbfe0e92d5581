// Package config builds the configuration of the reverb command from its
// four sources, highest first: command-line flags, the JSON/YAML config file
// mirroring config/reverb.php, the process environment, and the .env file
// (parsed here in phpdotenv's dialect, values cast like Laravel's env()),
// then Reverb's defaults. It also resolves the TLS certificate (explicit
// files or Herd/Valet's) and decrypts a passphrase-protected key.
//
// Everything here runs at startup: LoadConfig, ParseFlags, DevEnv and
// ServerTLSConfig may be called from any goroutine and keep nothing in
// memory between calls (LoadConfig may save the development app in the
// state directory); the Config they return is read-only afterwards.
package config
