// The SOS alert (求救提示) on the city map: while an SOS nobody here has silenced is open, a
// red banner names who called for help and the page sounds a two-tone alarm every few
// seconds (WebAudio: no sound file to load). Silencing it here stops the sound for the SOS
// alarms open now; a new one sounds again. Browsers start audio only once the page has
// been touched: until then the banner says to click. units-live.js hands over the open
// unit alarms each time it draws them.
// body[data-sos-alert]: sounding | blocked (no audio yet) | silenced | "" (no open SOS).
Object.assign(STRINGS.zh, { sos_title: "SOS 求救", sos_silence: "静音", sos_blocked: "点击页面任意处开启提示音" });
Object.assign(STRINGS.en, { sos_title: "SOS", sos_silence: "Silence",
                            sos_blocked: "click anywhere on the page to turn the alarm sound on" });

const sosAlert = (() => {
  const EVERY_MS = 2500;
  const TONES = [988, 784, 988, 784];       // Hz, 0.2 s each: a siren-like call
  const state = { open: [], silenced: new Set(), audio: null, timer: null };

  const esc = escapeHtml;                   // map.js
  const banner = () => document.getElementById("sos-alert");

  function audio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!state.audio) state.audio = new Context();
    if (state.audio.state === "suspended") state.audio.resume().catch(() => {});
    return state.audio;
  }

  function sound() {
    const ctx = audio();
    const running = Boolean(ctx) && ctx.state === "running";
    document.body.dataset.sosAlert = running ? "sounding" : "blocked";
    banner().querySelector(".sos-blocked").hidden = running;
    if (!running) return;
    const start = ctx.currentTime;
    TONES.forEach((hz, i) => {
      const tone = ctx.createOscillator();
      const volume = ctx.createGain();
      tone.type = "square";
      tone.frequency.value = hz;
      volume.gain.value = 0.12;
      tone.connect(volume).connect(ctx.destination);
      tone.start(start + i * 0.22);
      tone.stop(start + i * 0.22 + 0.2);
    });
  }

  function draw(loud) {
    const box = banner();
    box.hidden = !loud.length;
    if (!loud.length) return;
    const names = [...new Set(loud.map((a) => a.unit_name))].join("、");
    box.innerHTML = `<b>${esc(t("sos_title"))}</b> <span class="sos-names">${esc(names)}</span>
      <button type="button" class="sos-silence">${esc(t("sos_silence"))}</button>
      <span class="sos-blocked" hidden>${esc(t("sos_blocked"))}</span>`;
    box.querySelector(".sos-silence").addEventListener("click", silence);
  }

  function update(alarms) {
    state.open = alarms.filter((a) => a.kind === "sos");
    const loud = state.open.filter((a) => !state.silenced.has(a.id));
    draw(loud);
    if (loud.length && !state.timer) {
      sound();
      state.timer = setInterval(sound, EVERY_MS);
    } else if (loud.length) {
      banner().querySelector(".sos-blocked").hidden = document.body.dataset.sosAlert !== "blocked";
    } else {
      clearInterval(state.timer);
      state.timer = null;
      document.body.dataset.sosAlert = state.open.length ? "silenced" : "";
    }
  }

  function silence() {
    state.open.forEach((a) => state.silenced.add(a.id));
    update(state.open);
  }

  // The first touch of the page lets the browser play sound: start it then, not 2.5 s later.
  document.addEventListener("pointerdown", () => {
    if (state.timer && document.body.dataset.sosAlert === "blocked") audio()?.resume().then(sound, () => {});
  }, { capture: true });

  return { update, state };
})();
