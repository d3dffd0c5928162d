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

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: volume-readback N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "volume-readback: N must be a positive number, not %q\n", os.Args[1])
		os.Exit(2)
	}
	c, err := readBack(n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "volume-readback: %v\n", err)
		os.Exit(2)
	}
	line, _ := json.Marshal(c)
	fmt.Println(string(line))
	if c.Wrong+c.Errors+c.Hangs > 0 {
		os.Exit(1)
	}
}

// readBack uploads a volume into a scratch pool and downloads it n times; the pool
// and its directory are gone when it returns.
func readBack(n int) (counts, error) {
	c := counts{Downloads: n}
	dir, err := os.MkdirTemp("", "volume-readback")
	if err != nil {
		return c, err
	}
	defer os.RemoveAll(dir)
	l, err := connect()
	if err != nil {
		return c, fmt.Errorf("connect to libvirtd: %w", err)
	}
	// A transient pool: destroying it undefines it.
	pool, err := l.StoragePoolCreateXML(fmt.Sprintf(
		`<pool type="dir"><name>readback-%d</name><target><path>%s</path></target></pool>`, os.Getpid(), dir), 0)
	if err != nil {
		return c, fmt.Errorf("create scratch pool: %w", err)
	}
	defer func() { _ = l.StoragePoolDestroy(pool) }()
	vol, err := l.StorageVolCreateXML(pool, fmt.Sprintf(
		`<volume><name>v.iso</name><capacity>%d</capacity><target><format type="raw"/></target></volume>`,
		volumeSize), 0)
	if err != nil {
		return c, fmt.Errorf("create volume: %w", err)
	}
	data := make([]byte, volumeSize)
	_, _ = rand.Read(data)
	if err := l.StorageVolUpload(vol, bytes.NewReader(data), 0, volumeSize, 0); err != nil {
		return c, fmt.Errorf("upload: %w", err)
	}
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
				return c, fmt.Errorf("reconnect to libvirtd: %w", err)
			}
		}
	}
	return c, nil
}
