package loop

import (
	"testing"
	"unsafe"
)

// TestConnRecordSize holds README's per-socket memory figure: the
// connection record (conn, with its embedded hub.Session) must stay within
// Go's 224-byte allocation size class on 64-bit platforms; one more field
// could move every socket to the 240- or 256-byte class.
func TestConnRecordSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the figure is for 64-bit platforms")
	}
	size := unsafe.Sizeof(conn{})
	t.Logf("conn is %d bytes", size)
	if size > 224 {
		t.Fatalf("conn is %d bytes, past the 224-byte size class README states; shrink it or update README (How it works)", size)
	}
}
