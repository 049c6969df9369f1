// Package media will own video ingest and delivery: the RTSP server and pull
// client (gortsplib), WebRTC WHIP/WHEP (pion), depacketizing, the fragmenter
// and fMP4/MKV/HLS/MP4 muxing. It stores fragments as records in streamstore
// and knows nothing of AWS wire formats. (Video ingest is issue 3.)
package media
