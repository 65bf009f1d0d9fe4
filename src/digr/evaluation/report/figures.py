"""Sections: saliency panels (Figure 3) and an episode GIF with the student's map."""

from __future__ import annotations

import textwrap
from typing import Any

from digr.evaluation.report.base import _benchmark_obs, _cmd_block, _episode_frames, _Report


def _panels(rep: _Report) -> None:
    from digr import figures
    from digr.models.cnn import to_tensor
    from digr.saliency.presets import build_method

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## Saliency maps (paper Figure 3)", ""]
    n = cfg.panel_states
    png = rep.figdir / "saliency_panels.png"
    cols = [("GB perturbation\n(teacher)", "teacher", "perturbation"), ("VG (teacher)", "teacher", "vanilla")]
    if "digr" in rep.roles:
        cols.append(("VG (DIGR)", "digr", "vanilla"))
    # One more column per extra student: extended students are judged by their maps too.
    cols += [(textwrap.fill(f"VG ({s.label})", 22), s.label, "vanilla") for s in rep.pipe.students]
    key = {"kind": "panels", "weights": {r: rep.digests[r] for _, r, _ in cols}, "states": n,
           "seed": cfg.seed, "settings": {m: cfg.settings.get(m, {}) for _, _, m in cols},
           "columns": [c[0] for c in cols], "renderer": "render_panel"}

    def compute() -> dict[str, Any]:
        obs = _benchmark_obs(spec.name, n, cfg.seed)
        x = to_tensor(obs, spec.obs_shape)
        maps = [(title, build_method(rep.net(r), m, task=spec.name, settings=cfg.settings.get(m))
                 .attribute(x).numpy()) for title, r, m in cols]
        # state, then each map over a dimmed copy of the state, one colour bar for all
        figures.save_panel(png, x.numpy(), dict(maps))
        return {"states": list(range(n)), "seed": cfg.seed, "file": str(png.relative_to(rep.pipe.dir))}

    rep.cache("panels", key, compute, files=[png])
    names = ", ".join(c[0].replace("\n", " ") for c in cols)
    rep.md += [f"Benchmark states 0..{n - 1} (`reset(seed={cfg.seed}+k)`), each map divided by its max; "
               f"columns: {names}.", "", "![saliency panels](figures/saliency_panels.png)", ""]
    rep.done("panels")


def _gif(rep: _Report) -> None:
    from digr import figures

    cfg, spec = rep.cfg, rep.spec
    rep.md += ["## One episode with the DIGR student's saliency", ""]
    if "digr" not in rep.roles:
        rep.skip("gif", "no DIGR student in this pipeline folder")
        return
    gif = rep.figdir / "digr_episode.gif"
    key = {"kind": "gif", "weights": rep.digests["digr"], "task": spec.name, "seed": cfg.seed,
           "max_frames": cfg.gif_frames, "fps": cfg.gif_fps}

    def compute() -> dict[str, Any]:
        frames, stats = _episode_frames(rep.net("digr"), spec.name, seed=cfg.seed, max_frames=cfg.gif_frames)
        figures.write_gif(frames, gif, fps=cfg.gif_fps)
        return stats

    ep = rep.cache("gif", key, compute, files=[gif])
    cut = f", first {ep['frames']} frames shown" if ep["frames"] < ep["length"] + 1 else ""
    sr = "" if ep["success"] is None else f", success {str(ep['success']).lower()}"
    cmd = rep.command("evaluate", "performance", "--policy", rep.paths["digr"], "--task", spec.name,
                      "--episodes", "1", "--seed", str(cfg.seed), "--json")
    rep.md += [f"The DIGR student acting greedily in episode `reset(seed={cfg.seed})`, its eq. 2 "
               f"vanilla-gradient map overlaid on every frame ({cfg.gif_fps:g} fps{cut}). The same episode "
               "is episode 0 of:", "", *_cmd_block([cmd]),
               f"(return {ep['return']:.3f}, length {ep['length']}{sr}.)", "",
               "![DIGR episode](figures/digr_episode.gif)", ""]
    rep.done("gif")
