// Package media owns video ingest and live delivery: the RTSP server and
// pull sources (gortsplib), WHIP/WHEP (pion), the fragmenter that cuts
// keyframe-aligned fMP4 fragments for the store, the live fan-out (RTSP
// readers, WebRTC viewers, Low-Latency HLS) and the muxers of playback
// (Matroska, MPEG-TS, MP4 clips). It knows nothing of AWS wire formats.
package media
