/* Study page (idlora-bench human studies): one annotator id per browser session, one card at a time, answers
 * posted to the study server (bench human serve).
 *
 * Watch-gating: the answer buttons of a card stay disabled until every video on it (reference included) has
 * fired its `ended` event after being played continuously from its start (the element's `played` ranges cover
 * [0, duration]); until the card is answered a seek beyond the furthest point played is sent back there.
 */
"use strict";
(function () {
  const TOLERANCE_S = 0.3; // slack for frame-granular played ranges, in seconds
  const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(window.location.search);
  const state = { study: null, slot: null, session: null, annotator: null, cards: [], total: 0, before: 0,
                  index: 0, busy: false, watch: [] };
  window.studyState = state; // read-only view for people (and tests) inspecting the page

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
  }

  function key(name) {
    return "idlora-human:" + state.study.study_id + ":" + name;
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  async function post(path, body) {
    const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(body) });
    let data = {};
    try { data = await response.json(); } catch (ignored) { data = {}; }
    return { status: response.status, data: data };
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* ---------------------------------------------------------------- watch-gating */
  function playedFromStart(video) {
    // end of the played ranges that run continuously from 0 (seconds)
    const ranges = [];
    for (let i = 0; i < video.played.length; i++) ranges.push([video.played.start(i), video.played.end(i)]);
    ranges.sort((a, b) => a[0] - b[0]);
    let end = 0;
    for (const [start, stop] of ranges) {
      if (start > end + TOLERANCE_S) break;
      end = Math.max(end, stop);
    }
    return end;
  }

  function gateVideo(video, onChange) {
    const watch = { video: video, src: video.getAttribute("src"), ended: false, locked: true, blocked: 0 };
    video.addEventListener("seeking", () => {
      if (!watch.locked) return;
      const allowed = playedFromStart(video);
      if (video.currentTime > allowed + TOLERANCE_S) {
        watch.blocked += 1;
        video.currentTime = allowed;
      }
    });
    video.addEventListener("ended", () => {
      if (watch.ended) return;
      if (playedFromStart(video) >= video.duration - TOLERANCE_S) {
        watch.ended = true;
        video.closest("figure").classList.add("watched");
        onChange();
      }
    });
    return watch;
  }

  function videoFigure(label, src) {
    const figure = element("figure");
    figure.append(element("figcaption", "", label));
    const video = element("video", "watch");
    video.controls = true;
    video.preload = "auto";
    video.playsInline = true;
    video.disablePictureInPicture = true;
    video.setAttribute("controlsList", "nodownload noplaybackrate");
    video.dataset.label = label;
    video.src = src;
    figure.append(video);
    return figure;
  }

  function updateGate() {
    const watched = state.watch.filter((w) => w.ended).length;
    const ready = watched === state.watch.length;
    document.querySelectorAll("#rating button.rate").forEach((b) => { b.disabled = !ready || state.busy; });
    $("reveal").disabled = !ready;
    $("gate-status").textContent = ready ? "You can answer now."
      : "Watch every video to the end to unlock the answer (" + watched + " of " + state.watch.length + " watched).";
  }

  /* ---------------------------------------------------------------- cards */
  function showCard() {
    clearError();
    if (state.index >= state.cards.length) { finish(); return; }
    const card = state.cards[state.index];
    const question = state.study.questions[card.question];
    $("section-title").textContent = question.title + (card.practice ? " (practice)" : "");
    $("question").textContent = question.prompt;
    $("progress").textContent = "Card " + (state.before + state.index + 1) + " of " + state.total;
    const context = $("context");
    const videos = $("videos");
    context.replaceChildren();
    videos.replaceChildren();
    const figures = [];
    if (card.reference) {
      const figure = videoFigure("Reference", card.reference);
      context.append(figure);
      figures.push(figure);
    }
    if (card.description) {
      const box = element("div");
      box.append(element("strong", "", "Description: "));
      box.append(element("p", "description", card.description));
      context.append(box);
    }
    const labels = state.study.kind === "ab" ? ["A", "B"] : ["Video"];
    card.videos.forEach((src, i) => {
      const figure = videoFigure(labels[i], src);
      videos.append(figure);
      figures.push(figure);
    });
    state.watch = figures.map((figure) => gateVideo(figure.querySelector("video"), updateGate));
    const rating = $("rating");
    rating.replaceChildren();
    for (const option of state.study.answers) {
      const button = element("button", "rate", option.label);
      button.type = "button";
      button.dataset.answer = option.value;
      button.addEventListener("click", () => submit(card, option.value));
      rating.append(button);
    }
    $("practice").hidden = !card.practice;
    $("answer-text").hidden = true;
    $("next").hidden = true;
    state.cardShown = Date.now();
    $("card").hidden = false;
    updateGate();
  }

  function reveal(card, answer) {
    const known = card.answer || [];
    let text = card.explanation || "";
    if (answer !== undefined) text = (known.includes(answer) ? "Correct. " : "Not quite. ") + text;
    $("answer-text").textContent = text;
    $("answer-text").hidden = false;
  }

  async function submit(card, answer) {
    if (state.busy || !state.watch.every((w) => w.ended)) return;
    state.busy = true;
    updateGate();
    const watched = state.watch.map((w) => ({ src: w.src, ended: w.ended, played_s: playedFromStart(w.video),
                                              duration_s: w.video.duration, blocked_seeks: w.blocked }));
    let result;
    try {
      result = await post("api/answer", { session_id: state.session, item_id: card.item_id, answer: answer,
                                          elapsed_ms: Date.now() - state.cardShown, watched: watched });
    } catch (error) {
      result = { status: 0, data: { error: "the study server cannot be reached (" + error.message + ")" } };
    }
    state.busy = false;
    if (result.status !== 201 && result.status !== 409) {
      showError("Your answer was not saved: " + (result.data.error || "HTTP " + result.status) + ". Try again.");
      updateGate();
      return;
    }
    state.watch.forEach((w) => { w.locked = false; });
    document.querySelectorAll("#rating button.rate").forEach((b) => { b.disabled = true; });
    if (card.practice) {
      reveal(card, answer);
      $("next").hidden = false;
      return;
    }
    state.index += 1;
    showCard();
  }

  async function finish() {
    $("card").hidden = true;
    $("progress").textContent = "Done";
    const result = await post("api/complete", { session_id: state.session });
    if (result.status !== 200) {
      showError("Could not finish: " + (result.data.error || "HTTP " + result.status));
      return;
    }
    $("code").textContent = result.data.code;
    $("done").hidden = false;
  }

  /* ---------------------------------------------------------------- session */
  async function start() {
    clearError();
    const annotator = $("annotator").value.trim();
    if (!ID_PATTERN.test(annotator)) {
      showError("A worker ID is 1-64 letters, digits or . _ @ - (starting with a letter or digit).");
      return;
    }
    const stored = window.sessionStorage.getItem(key("annotator"));
    if (stored && stored !== annotator) {
      showError("This browser session belongs to worker " + stored + "; open a new browser session for another ID.");
      return;
    }
    const result = await post("api/session", { study_id: state.study.study_id, annotator_id: annotator,
                                               slot: state.slot });
    if (result.status !== 201) {
      showError(result.data.error || "HTTP " + result.status);
      return;
    }
    window.sessionStorage.setItem(key("annotator"), annotator);
    state.annotator = annotator;
    state.session = result.data.session_id;
    const slot = await getJSON("slots/slot-" + String(state.slot).padStart(4, "0") + ".json");
    const answered = new Set(result.data.answered);
    state.total = slot.cards.length;
    state.cards = slot.cards.filter((card) => !answered.has(card.item_id));
    state.before = state.total - state.cards.length;
    $("intro").hidden = true;
    showCard();
  }

  async function init() {
    try {
      state.study = await getJSON("public.json");
    } catch (error) {
      showError("Cannot load the study: " + error.message);
      return;
    }
    $("title").textContent = state.study.title;
    document.title = state.study.title;
    const slot = params.get("slot");
    if (slot === null || !/^\d+$/.test(slot) || Number(slot) >= state.study.n_slots) {
      showError("This page needs ?slot=N in its address, with N from 0 to " + (state.study.n_slots - 1) + ".");
      return;
    }
    state.slot = Number(slot);
    const given = params.get("annotator") || params.get("workerId") || "";
    const stored = window.sessionStorage.getItem(key("annotator"));
    if (stored && given && stored !== given) {
      showError("This browser session belongs to worker " + stored + "; open a new browser session for " + given + ".");
      return;
    }
    const list = $("instructions");
    state.study.instructions.forEach((line) => list.append(element("li", "", line)));
    $("annotator").value = stored || given;
    $("annotator").readOnly = Boolean(stored);
    $("intro").hidden = false;
    $("start-form").addEventListener("submit", (event) => { event.preventDefault(); start(); });
    $("reveal").addEventListener("click", () => reveal(state.cards[state.index]));
    $("next").addEventListener("click", () => { state.index += 1; showCard(); });
  }

  init();
})();
