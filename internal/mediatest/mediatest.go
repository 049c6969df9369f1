// Package mediatest holds what video tests share: test clips made with
// ffmpeg, and ffmpeg/ffprobe checks of what the gateway returns.
package mediatest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Need fails the test when a media tool is missing: `make test` installs
// them, and a test that skipped would hide a broken install step.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run `make test`, which installs it", tool)
		}
	}
}

var clipMu sync.Mutex

// Clip encodes (once per machine, codec and length) a clip with a moving
// test pattern and a tone: 320x240, 25 fps, a keyframe every 2 s, B-frames,
// AAC audio (Opus for "h264-opus"). codec is "h264", "h265", "h264-opus",
// "camera" (what an IP camera sends: H.264 without B-frames, AAC) or
// "webrtc" (what a browser sends: H.264 constrained baseline, Opus).
func Clip(t testing.TB, codec string, seconds int) string {
	t.Helper()
	Need(t, "ffmpeg")
	clipMu.Lock()
	defer clipMu.Unlock()
	dir := filepath.Join(os.TempDir(), "streamgate-test-clips")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("%s-%ds.mp4", codec, seconds))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	enc := []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "2"}
	audio := []string{"-c:a", "aac", "-b:a", "64k"}
	switch codec {
	case "h265":
		enc = []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=2", "-tag:v", "hvc1"}
	case "h264-opus":
		audio = []string{"-c:a", "libopus", "-b:a", "48k"}
	case "camera":
		enc = []string{"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0"}
	case "webrtc":
		enc = []string{"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-bf", "0"}
		audio = []string{"-c:a", "libopus", "-b:a", "48k"}
	}
	args := []string{"-v", "error", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=320x240:rate=25:duration=%d", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", seconds)}
	args = append(append(args, enc...), audio...)
	tmp := fmt.Sprintf("%s.%d.tmp.mp4", path, os.Getpid())
	args = append(args, "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-shortest", "-y", tmp)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("encoding test clip: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Elementary splits a clip with H.264 and Opus into an Annex-B H.264 file and
// an Ogg Opus file with one packet per page (the inputs of a WebRTC test
// publisher).
func Elementary(t testing.TB, clip string) (h264, ogg string) {
	t.Helper()
	clipMu.Lock()
	defer clipMu.Unlock()
	h264, ogg = strings.TrimSuffix(clip, ".mp4")+".h264", strings.TrimSuffix(clip, ".mp4")+".ogg"
	if _, err := os.Stat(ogg); err == nil {
		return h264, ogg
	}
	for _, args := range [][]string{
		{"-i", clip, "-an", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-y", h264 + ".tmp"},
		{"-i", clip, "-vn", "-c:a", "copy", "-page_duration", "20000", "-f", "ogg", "-y", ogg + ".tmp"},
	} {
		if out, err := exec.Command("ffmpeg", append([]string{"-v", "error"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	if err := os.Rename(h264+".tmp", h264); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ogg+".tmp", ogg); err != nil {
		t.Fatal(err)
	}
	return h264, ogg
}

// Publish runs ffmpeg publishing a clip over RTSP and waits for it to end.
func Publish(t testing.TB, clip, target, transport string, realtime bool) {
	t.Helper()
	args := []string{"-v", "error"}
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", transport, target)
	// A publisher that stalls fails the test rather than hanging the build.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg publish: %v\n%s", err, out)
	}
}

// PublishLoop starts ffmpeg publishing a clip in a loop, in real time; the
// returned command is killed when the test ends.
func PublishLoop(t testing.TB, clip, target string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", target)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// Frames counts the decodable video frames of a file.
func Frames(t testing.TB, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.Split(string(out), "\n")[0]))
	if err != nil {
		t.Fatalf("ffprobe output %q", out)
	}
	return n
}

// DecodeClean decodes a file with ffmpeg and fails on any decoder message.
func DecodeClean(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg decoding %s: %v\n%s", path, err, out)
	}
}

// Codecs lists the codec names of a file's streams, in order (e.g. h264 aac).
func Codecs(t testing.TB, path string) []string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=index,codec_name", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	// HLS lists its streams once per program and once on their own.
	var codecs []string
	seen := map[string]bool{}
	for _, line := range strings.Fields(string(out)) {
		index, codec, _ := strings.Cut(line, ",")
		if !seen[index] {
			seen[index] = true
			codecs = append(codecs, codec)
		}
	}
	return codecs
}

// Save copies a response body (a GetMedia stream, say) into a file of the
// test's temporary directory, closes the body and returns the file's path.
func Save(t testing.TB, body io.ReadCloser, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer body.Close()
	io.Copy(f, body) // a stream the test ends by cancelling its context ends in an error: keep what arrived
	return path
}
