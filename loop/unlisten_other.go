//go:build !linux

package loop

import "github.com/panjf2000/gnet/v2"

// unlisten needs /proc/self/fd to find gnet's listeners and is a no-op
// elsewhere: there, connections that arrive between the 4200s and gnet
// closing its listeners are accepted and closed. Development only;
// production runs on Linux.
func unlisten(gnet.Engine, map[uint64]bool) {}

func listenerInodes(gnet.Engine) map[uint64]bool { return nil }
