package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// ErrNoDecoder is returned when ffmpeg, the optional runtime dependency that
// decodes video for images, is not installed.
var ErrNoDecoder = errors.New("decoding images needs ffmpeg on the gateway host (e.g. apt-get install ffmpeg)")

// ImageFormat is an output format of Snapshot.
type ImageFormat string

const (
	JPEG ImageFormat = "JPEG"
	PNG  ImageFormat = "PNG"
)

// Snapshot decodes the picture shown at offset into a stored fragment
// (init + moof/mdat) and encodes it as JPEG or PNG, scaled to width x height
// (0 keeps the aspect ratio; both 0 keep the size). quality is JPEG's 1-100.
// The gateway never decodes video itself: ffmpeg does, in a child process.
func Snapshot(ctx context.Context, init, media []byte, offset time.Duration, format ImageFormat, width, height, quality int) ([]byte, error) {
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, ErrNoDecoder
	}
	w, h := width, height
	if w == 0 && h != 0 {
		w = -2
	}
	if h == 0 && w != 0 {
		h = -2
	}
	args := []string{"-v", "error", "-f", "mp4", "-i", "pipe:0", "-ss", fmt.Sprintf("%.3f", offset.Seconds()), "-frames:v", "1"}
	if w != 0 || h != 0 {
		args = append(args, "-vf", "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h))
	}
	switch format {
	case PNG:
		args = append(args, "-c:v", "png", "-f", "image2pipe", "pipe:1")
	default:
		// ffmpeg's MJPEG quality scale runs 2 (best) to 31.
		q := 2 + (100-max(1, min(quality, 100)))*29/99
		args = append(args, "-c:v", "mjpeg", "-q:v", strconv.Itoa(q), "-f", "image2pipe", "pipe:1")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(append(append([]byte{}, init...), media...))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if out.Len() == 0 {
		return nil, errors.New("ffmpeg decoded no picture at that time")
	}
	return out.Bytes(), nil
}
