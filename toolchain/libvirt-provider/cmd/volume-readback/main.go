// volume-readback N: upload a small volume into a scratch pool of the local
// libvirtd, then download it N times through go-libvirt as the libvirt plugin
// reads a CloudInitDisk back. Prints one JSON line of counts; exits 1 if any
// download hung (no end within 10 s), failed or returned other bytes.
// tests/e2e/test_volume_readback.py runs it under CPU load: the regression test
// of toolchain/libvirt-provider/go-libvirt-stream.patch.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// The size of a lab node's cloud-init ISO.
const volumeSize = 374784

type counts struct {
	Downloads int `json:"downloads"`
	Wrong     int `json:"wrong"`
	Errors    int `json:"errors"`
	Hangs     int `json:"hangs"`
}

func connect() (*libvirt.Libvirt, error) {
	l := libvirt.NewWithDialer(dialers.NewLocal())
	return l, l.Connect()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "volume-readback: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: volume-readback N")
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fail("N must be a positive number, not %q", os.Args[1])
	}
	dir, err := os.MkdirTemp("", "volume-readback")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	l, err := connect()
	if err != nil {
		fail("connect to libvirtd: %v", err)
	}
	// A transient pool: gone with its directory when this ends (or libvirtd stops).
	pool, err := l.StoragePoolCreateXML(fmt.Sprintf(
		`<pool type="dir"><name>readback-%d</name><target><path>%s</path></target></pool>`, os.Getpid(), dir), 0)
	if err != nil {
		fail("create scratch pool: %v", err)
	}
	defer func() { _ = l.StoragePoolDestroy(pool) }()
	vol, err := l.StorageVolCreateXML(pool, fmt.Sprintf(
		`<volume><name>v.iso</name><capacity>%d</capacity><target><format type="raw"/></target></volume>`,
		volumeSize), 0)
	if err != nil {
		fail("create volume: %v", err)
	}
	data := make([]byte, volumeSize)
	_, _ = rand.Read(data)
	if err := l.StorageVolUpload(vol, bytes.NewReader(data), 0, volumeSize, 0); err != nil {
		fail("upload: %v", err)
	}
	c := counts{Downloads: n}
	for i := 0; i < n; i++ {
		var got bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- l.StorageVolDownload(vol, &got, 0, 0, 0) }()
		select {
		case err := <-done:
			if err != nil {
				c.Errors++
			} else if !bytes.Equal(got.Bytes(), data) {
				c.Wrong++
			}
		case <-time.After(10 * time.Second):
			c.Hangs++ // that connection is stuck for good: go on with a new one
			if l, err = connect(); err != nil {
				fail("reconnect to libvirtd: %v", err)
			}
		}
	}
	line, _ := json.Marshal(c)
	fmt.Println(string(line))
	if c.Wrong+c.Errors+c.Hangs > 0 {
		os.Exit(1)
	}
}
