// Package wsproto is the byte level of the server: HTTP/1.x request heads,
// the RFC 6455 upgrade handshake, HTTP responses, and WebSocket frames in
// both directions. Everything works on caller-owned []byte; nothing here does
// I/O.
//
// wsproto is a leaf: it imports no other package of this module and no gnet.
// It reuses gobwas/ws only for its types and helpers (ws.Header, ws.OpCode,
// ws.StatusCode, ws.Cipher), never its I/O paths.
//
// Threading: package functions and variables are safe from any goroutine
// (callers must not modify the exported precompiled frames and errors). A
// Reader holds per-connection state and is used by one goroutine at a time;
// in the server that is the connection's event loop.
//
// Borrowed memory: parse results (Request fields, Frame payloads) alias the
// caller's input or the Reader's buffer instead of copying. Each exported
// name says how long such slices stay valid.
package wsproto
