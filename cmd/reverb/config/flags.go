package config

import (
	"flag"
	"io"
)

// ParseFlags reads the flags shared by `reverb start` and `reverb restart`
// (name is the command, for usage messages written to stderr). Only flags
// given on the command line are set in Flags (nil = not given). Any
// goroutine may call it.
func ParseFlags(name string, args []string, stderr io.Writer) (Flags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "", "address to bind (REVERB_SERVER_HOST)")
	port := fs.Int("port", 0, "port to bind (REVERB_SERVER_PORT)")
	path := fs.String("path", "", "route prefix (REVERB_SERVER_PATH)")
	hostname := fs.String("hostname", "", "public host name (REVERB_HOST)")
	debug := fs.Bool("debug", false, "log connections and every frame in and out")
	cfgFile := fs.String("config", "", "config file (JSON or YAML) mirroring config/reverb.php")
	envFile := fs.String("env-file", "", "the .env file to read (default ./.env)")
	if err := fs.Parse(args); err != nil {
		return Flags{}, err
	}
	var f Flags
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "host":
			f.Host = host
		case "port":
			f.Port = port
		case "path":
			f.Path = path
		case "hostname":
			f.Hostname = hostname
		case "debug":
			f.Debug = debug
		case "config":
			f.ConfigFile = cfgFile
		case "env-file":
			f.EnvFile = envFile
		}
	})
	return f, nil
}
