// @ts-check
// The candidate page's own recording of its camera (issue 14): MediaRecorder, cut into self-contained
// segments of about `segmentMs` each, handed to `onSegment` as {blob, start, end, content_type}.
//
// Why a new MediaRecorder per segment, and not one recorder with `timeslice`, nor WebCodecs + a muxer:
// - `timeslice` chunks are not playable alone (only the first has the WebM header), and the hub must be
//   able to check and play each uploaded segment by itself.
// - WebCodecs (VideoEncoder with a forced keyframe per segment) plus a JS muxer (Mediabunny) would give
//   gapless cuts, but WebCodecs is not in every browser candidates use, and it would add a muxer library
//   to vendor and keep up to date. MediaRecorder is everywhere, and a restarted recorder writes a complete
//   file each time.
// The price of restarting is a few milliseconds at each cut. We start the next recorder before stopping
// the previous one, so consecutive segments overlap by those milliseconds instead of leaving a hole.
//
// Each segment's `start` and `end` are this page's wall clock (the recorder's own timecodes count from its
// first chunk, not from any clock the hub knows): when its recorder started and when it was told to stop.
// Chrome's WebM files have no Duration element; the hub measures a segment from its packets.

const TYPES = ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp8", "video/webm", "video/mp4"];

/** The first container/codec this browser says it can record (null: MediaRecorder cannot record here). */
export function recorderType(hasAudio) {
  if (typeof MediaRecorder === "undefined") return null;
  for (const type of TYPES) {
    if (!hasAudio && type.includes("opus")) continue;
    if (MediaRecorder.isTypeSupported(type)) return type;
  }
  return null;
}

export class LocalRecorder {
  /**
   * @param {object} options
   * @param {(piece: {blob: Blob, start: number, end: number, content_type: string}) => void} options.onSegment
   * @param {number} [options.segmentMs] the length of a segment
   * @param {number} [options.videoBps] the video bitrate asked of the recorder
   * @param {(message: string) => void} [options.onError]
   */
  constructor({ onSegment, segmentMs = 30000, videoBps = 500000, onError = () => {} }) {
    this.onSegment = onSegment;
    this.segmentMs = segmentMs;
    this.videoBps = videoBps;
    this.onError = onError;
    this.stream = null;
    this.track = null;
    /** @type {{recorder: MediaRecorder, done: Promise<void>} | null} */
    this.current = null;
    this.timer = null;
    this.stopped = false;
  }

  /** The camera stream to record (null: the camera is off). A new video track starts a new segment.
   * The recorder takes clones of the tracks: when the page stops the camera (Finish, leaving the room)
   * the recorder still ends its segment itself, with all its data, when it is told to. */
  setStream(stream) {
    if (this.stopped) return;
    const track = stream ? stream.getVideoTracks().find((t) => t.readyState === "live") || null : null;
    if (track === this.track) return;
    this.track = track;
    const old = this.stream;
    this.stream = track ? new MediaStream([track, ...stream.getAudioTracks()].map((t) => t.clone())) : null;
    const done = track ? this.rotate() : this.cut();
    if (old) done.then(() => old.getTracks().forEach((t) => t.stop()));
  }

  /** Start the next segment, and end the one running once the next has started: they overlap by the
   * tens of milliseconds a start takes, instead of leaving that much unrecorded. */
  rotate() {
    clearTimeout(this.timer);
    const previous = this.current;
    let ended = null;
    const handOver = () => (ended = ended || (previous ? this.end(previous) : Promise.resolve()));
    this.current = this.stream ? this.begin(this.stream, handOver) : null;
    if (!this.current) handOver();
    if (this.current) this.timer = setTimeout(() => this.rotate(), this.segmentMs);
    // Resolves once the previous segment is handed on (for the caller that stops its old tracks).
    return previous && this.current ? previous.done : handOver();
  }

  /** End the running segment without starting another (camera gone, Finish). */
  cut() {
    clearTimeout(this.timer);
    const previous = this.current;
    this.current = null;
    return previous ? this.end(previous) : Promise.resolve();
  }

  /** A new recorder on `stream`; `started` runs once it records (or at once if it cannot start). */
  begin(stream, started = () => {}) {
    const type = recorderType(stream.getAudioTracks().length > 0);
    if (!type) {
      this.onError("this browser cannot record video locally (MediaRecorder)");
      return null;
    }
    let recorder;
    try {
      recorder = new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: this.videoBps, audioBitsPerSecond: 48000 });
    } catch (err) {
      this.onError(`local recording could not start: ${err.message}`);
      return null;
    }
    const chunks = [];
    let start = null;
    let end = null;
    recorder.addEventListener("start", () => {
      start = Date.now();
      started();
    });
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    const done = new Promise((resolve) => {
      recorder.addEventListener("stop", () => {
        if (start != null && chunks.length) {
          const content_type = (recorder.mimeType || type).split(";")[0].trim();
          this.onSegment({ blob: new Blob(chunks, { type: content_type }), start, end: end ?? Date.now(), content_type });
        }
        resolve();
      });
    });
    recorder.addEventListener("error", (event) => this.onError(`local recording failed: ${event["error"]?.message || "error"}`));
    const entry = { recorder, done, markEnd: () => (end = Date.now()) };
    try {
      recorder.start();
    } catch (err) {
      this.onError(`local recording could not start: ${err.message}`);
      return null;
    }
    // A start that never comes (the track ended meanwhile) must not keep the previous one running.
    setTimeout(() => start == null && started(), 2000);
    return entry;
  }

  end(entry) {
    entry.markEnd();
    if (entry.recorder.state !== "inactive") {
      try {
        entry.recorder.stop();
      } catch {
        // already stopping
      }
    }
    // A recorder that never says `stop` (it failed) must not hold up Finish.
    return Promise.race([entry.done, new Promise((resolve) => setTimeout(resolve, 3000))]);
  }

  /** Finish: end the running segment (its `onSegment` has run when this resolves) and record no more. */
  async stop() {
    this.stopped = true;
    await this.cut();
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }
}
