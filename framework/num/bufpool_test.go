package num

import "testing"

// TestBufPoolClasses checks the size classes: a vector of length n has room
// for at most 12.5% more, a returned vector serves nearby lengths, and the
// pool never holds more than maxPooled bytes, however many lengths pass.
func TestBufPoolClasses(t *testing.T) {
	DropBufs()
	defer DropBufs()
	for n := 1; n < 100000; n = n*5/4 + 1 {
		c := classUp(n)
		if c < n || float64(c) > 1.125*float64(n)+1 || classDown(c) != c || classDown(n) > n {
			t.Fatalf("n = %d: classUp %d, classDown(classUp) %d, classDown %d", n, c, classDown(c), classDown(n))
		}
	}
	a := GetBuf(1000)
	if len(a) != 1000 || cap(a) != classUp(1000) {
		t.Fatalf("GetBuf(1000): len %d cap %d", len(a), cap(a))
	}
	PutBuf(a)
	b := GetBuf(990)
	if len(b) != 990 || &b[0] != &a[0] {
		t.Errorf("GetBuf(990) after PutBuf of a 1000-vector of the same class: a new vector")
	}
	PutBuf(make([]float32, 777)) // not from GetBuf: kept in the class below its capacity
	if c := GetBuf(classDown(777)); &c[0] == nil || cap(c) < classDown(777) {
		t.Error("a foreign vector's class")
	}
	// Many lengths of 4 MiB and more (800 MiB in all): the pool stays bounded.
	for i := range 200 {
		PutBuf(make([]float32, 1<<20+i*4096))
		if bufs.bytes > maxPooled {
			t.Fatalf("pool holds %d bytes after %d vectors, more than %d", bufs.bytes, i+1, maxPooled)
		}
	}
	total := 0
	for k, l := range bufs.free {
		for _, v := range l {
			if len(v) != k {
				t.Fatalf("class %d holds a vector of %d", k, len(v))
			}
		}
		total += 4 * k * len(l)
	}
	if total != bufs.bytes {
		t.Errorf("pool counts %d bytes, holds %d", bufs.bytes, total)
	}
}
