"""The studio's model: every picture and number the page shows, computed by the functions the latent
commands use (``seed_latents``, ``render``, the editors' ``edit``, ``interpolation_strip``,
``gif_bytes``, ``png_bytes``), so that the page and the command line never disagree. No HTTP here.

The page keeps each tab's state (seed or latent, class, psi, mixing, slider values) and sends it
whole with every request. A render is a function of that state and of caches that only grow
(fitted directions, inverted latents, each immutable once made), so two tabs cannot disturb each
other's work.

How a state becomes an image. The latent starts where it comes from: ``z`` of the seed (the first
draw of ``torch.Generator(device).manual_seed(seed)``, as ``ganforge edit -n 1 --seed S``) or an
inverted latent. It then climbs z -> w -> W+ only as far as the state needs: edits are applied in
their own space on the way up (z edits first; ``psi`` truncates where ``z`` becomes ``w``; style
mixing replaces the chosen layers of W+ before W+ edits), and the image is rendered from the last
space reached. With one slider and no truncation or mixing this is exactly ``ganforge edit``'s
computation.
"""

from __future__ import annotations

import base64
import collections
import inspect
import io
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    ConfigError,
    DataError,
    StyleGenerator,
    layer_range,
    png_bytes,
    read_image,
    structure_as,
)
from torch import Tensor

from ganforge_plugins.latent.commands import (
    Invert,
    InvertConfig,
    build_editor,
    forth_and_back,
    gif_bytes,
    interpolation_strip,
    run_dir,
    seed_latents,
    within_class,
)
from ganforge_plugins.latent.editing import build_scorer
from ganforge_plugins.latent.interpolation import MODES
from ganforge_plugins.latent.spaces import (
    fingerprint,
    latent_array_bytes,
    latent_side,
    lift,
    render,
    save_latent_array,
    space_names,
)
from ganforge_plugins.studio.jobs import JobProgress, Jobs

ORDER = {"z": 0, "w": 1, "w+": 2}
LAYER_GROUPS = ("coarse", "middle", "fine")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096  # a 20,000 x 20,000 header is refused before a pixel is decoded
MAX_GRID = 64
MAX_STRIP = 33
FIT_SEED = 1  # `ganforge edit`'s fit seed at its default --seed 0: a studio fit is the command's default fit
MAX_LATENTS = 512  # inverted latents kept in memory (oldest dropped first)
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
MAX_ALPHA = 20.0  # a slider's range, and a strip's
MAX_INVERT_STEPS = 100_000  # the one worker runs jobs in turn: a request may not hold it for days


# -- what a request says (structured with the one converter, so a bad field is named) -----------------


@attrs.frozen(kw_only=True)
class Mix:
    seed: int = attrs.field(validator=[v.ge(0), v.le(MAX_SEED)])
    layers: tuple[str, ...] = attrs.field(default=("coarse",), converter=tuple)  # of coarse / middle / fine / a:b


@attrs.frozen(kw_only=True)
class SliderValue:
    slider: str  # a direction's key, "#k" after it for a component of a multi-component editor
    alpha: float = attrs.field(validator=[v.ge(-MAX_ALPHA), v.le(MAX_ALPHA)])


@attrs.frozen(kw_only=True)
class State:
    """One tab's current image: where its latent comes from and what is done to it."""

    seed: int = attrs.field(default=0, validator=[v.ge(0), v.le(MAX_SEED)])
    latent: str = ""  # an inverted latent's id, instead of the seed
    class_index: int | None = None  # for a class-conditional generator
    psi: float = attrs.field(default=1.0, validator=[v.ge(-1.0), v.le(2.0)])
    mix: Mix | None = None
    edits: tuple[SliderValue, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class GridRequest:
    seed: int = attrs.field(default=0, validator=[v.ge(0), v.le(MAX_SEED)])
    count: int = attrs.field(default=16, validator=[v.ge(1), v.le(MAX_GRID)])
    class_index: int | None = None
    psi: float = attrs.field(default=1.0, validator=[v.ge(-1.0), v.le(2.0)])


@attrs.frozen(kw_only=True)
class StripRequest:
    state: State
    slider: str
    alphas: tuple[float, ...] = attrs.field(converter=tuple)

    @alphas.validator
    def _check(self, attribute: Any, value: tuple[float, ...]) -> None:
        if not 1 <= len(value) <= MAX_STRIP:
            raise ValueError(f"alphas: expected 1 to {MAX_STRIP} strengths, got {len(value)}")
        outside = [a for a in value if not -MAX_ALPHA <= a <= MAX_ALPHA]
        if outside:
            raise ValueError(f"alphas: expected strengths in [-{MAX_ALPHA:g}, {MAX_ALPHA:g}], got {outside[:3]}")


@attrs.frozen(kw_only=True)
class InterpolationRequest:
    a: State
    b: State
    steps: int = attrs.field(default=8, validator=[v.ge(2), v.le(MAX_STRIP)])
    mode: str = attrs.field(default="slerp", validator=v.in_(MODES))
    space: str = attrs.field(default="z", validator=v.in_(tuple(ORDER)))
    frame_ms: int = attrs.field(default=120, validator=[v.ge(10), v.le(5000)])


def parse(cls: type, raw: Any, what: str) -> Any:
    """A request body structured as ``cls``, or a ConfigError naming the field at fault."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid {what}: expected a JSON object, got {type(raw).__name__}")
    return structure_as(cls, raw, source=what)


# -- the directions the plugins offer -------------------------------------------------------------


@attrs.frozen
class Direction:
    """One fit of one editor: ``params`` are its settings (as ``ganforge edit --param``)."""

    key: str
    editor: str
    params: tuple[tuple[str, str], ...]
    label: str

    def file_name(self, class_index: int | None) -> str:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.key).strip("-")
        return f"{slug}{'' if class_index is None else f'-class{class_index}'}.safetensors"


def catalogue(manager: Any, *, style: bool, scorers: dict[str, Any],
              layer_groups: tuple[str, ...] = ()) -> list[Direction]:
    """Every direction the registered editors can fit on this generator: one per scorer attribute for
    an editor that edits an ``attribute`` (InterFaceGAN, the latent transformer, vector arithmetic),
    one per (non-empty) layer range for one with principal ``component``s (GANSpace), one otherwise. Style
    generators are edited in ``w`` (the paper's choice for StyleGAN), others in ``z``."""
    space = "w" if style else "z"
    out: list[Direction] = []
    registry = manager.registries["editor"]
    for name in sorted(registry.names()):
        fields = {f.name for f in attrs.fields(registry.get(name).config)}
        common = (("space", space),) if "space" in fields else ()
        if "attribute" in fields:
            for scorer_name, scorer in scorers.items():
                names = list(scorer.attributes)
                for attribute in names:
                    spec = scorer_name if len(names) == 1 else f"{scorer_name}:{attribute}"
                    out.append(Direction(f"{name}:{spec}@{space}", name, (("attribute", spec), *common),
                                         f"{spec} ({name}, {space})"))
        elif "component" in fields and "layers" in fields:
            for layers in ("all", *layer_groups) if style else ("all",):
                params = (("layers", layers),) + ((("pca_space", "z"),) if not style else ())
                where = ("w" if style else "z") if layers == "all" else f"W+ {layers} layers"
                out.append(Direction(f"{name}:{layers}", name, params, f"{name} components ({where})"))
        else:
            out.append(Direction(name, name, common, f"{name} ({space})"))
    return out


# -- the studio ---------------------------------------------------------------------------------


@attrs.frozen
class Stored:
    """An inverted latent: immutable once stored."""

    latent: Tensor  # [1, *space]
    space: str
    class_index: int | None
    name: str
    psnr: float


class Studio:
    """One trained generator, the directions fitted on it and the latents inverted into it."""

    def __init__(self, trained: Any, manager: Any, *, out: Path | None = None) -> None:
        self.trained = trained
        self.manager = manager
        self.device = trained.device
        self.run = run_dir(trained)
        self.out = out or self.run / "latent" / "studio"
        self.style = isinstance(trained.module, StyleGenerator)
        self.spaces = space_names(trained.module)
        self.scorers = {name: build_scorer(name) for name in sorted(manager.registries["scorer"].names())}
        groups = tuple(n for n in LAYER_GROUPS if len(getattr(trained.module, "layer_ranges", {}).get(n, ())))
        self.directions = {d.key: d for d in catalogue(manager, style=self.style, scorers=self.scorers,
                                                       layer_groups=groups)}
        self.jobs = Jobs()
        self._lock = threading.Lock()
        self._views: dict[int | None, Any] = {}
        self._fingerprints: dict[int | None, str] = {}
        self._editors: dict[tuple[str, int | None], Any] = {}
        self._latents: collections.OrderedDict[str, Stored] = collections.OrderedDict()

    # -- what the page needs to draw itself

    def info(self) -> dict[str, Any]:
        g = self.trained.module
        k = self.trained.num_classes
        names = list(self.trained.spec.class_names or ()) if k else []
        return {
            "run": str(self.run), "checkpoint": str(self.trained.checkpoint.path),
            "step": self.trained.checkpoint.step, "generator": self.trained.config.generator.name,
            "shape": list(self.trained.spec.shape), "spaces": self.spaces, "style": self.style,
            "num_ws": getattr(g, "num_ws", None),
            "layer_ranges": {n: [r.start, r.stop] for n, r in getattr(g, "layer_ranges", {}).items()},
            "classes": names or ([str(i) for i in range(k)] if k else None),
            "scorers": {n: list(s.attributes) for n, s in self.scorers.items()},
            "directions": [self.direction_view(d, None) for d in self.directions.values()],
            "inversion_methods": sorted(self.manager.registries["inversion"].names()),
            "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "upload_pixels": MAX_UPLOAD_PIXELS},
        }

    def direction_view(self, d: Direction, class_index: int | None) -> dict[str, Any]:
        editor = self._editors.get((d.key, class_index))
        view: dict[str, Any] = {"key": d.key, "editor": d.editor, "label": d.label,
                                "params": dict(d.params), "fitted": editor is not None,
                                "cached": self.direction_file(d.key, class_index).is_file()}
        if editor is not None:
            view["space"] = editor.space
            view["sliders"] = sliders(d, editor)
        return view

    def view(self, class_index: int | None) -> Any:
        """The generator as the commands see it: within one class for a class-conditional one."""
        with self._lock:
            if class_index not in self._views:
                self._views[class_index] = within_class(self.trained, class_index, "studio")
                self._fingerprints[class_index] = fingerprint(self._views[class_index])
            return self._views[class_index]

    # -- images

    @torch.no_grad()
    def grid(self, request: GridRequest) -> list[dict[str, Any]]:
        """One image per seed ``seed .. seed + count - 1`` (each the first draw of its own seed)."""
        g = self.view(request.class_index).module
        seeds = list(range(request.seed, request.seed + request.count))
        space = "z" if request.psi == 1.0 else "w"
        images = render(g, seed_latents(g, seeds, space, device=self.device, psi=request.psi), space)
        return [{"seed": s, "image": data_url(png_bytes(x[None], nrow=1))} for s, x in zip(seeds, images, strict=True)]

    @torch.no_grad()
    def latent(self, state: State) -> tuple[Tensor, str, list[str]]:
        """The state's latent after its edits, in the last space they needed, and notes for the page."""
        view = self.view(state.class_index)
        g = view.module
        notes: list[str] = []
        if state.latent:
            stored = self.stored(state.latent)
            if stored.class_index != state.class_index:
                raise ConfigError(f"state.class_index: latent {state.latent!r} was inverted within class "
                                  f"{stored.class_index}, not {state.class_index}")
            x, space = stored.latent.to(self.device), stored.space
            if state.psi != 1.0:
                notes.append(f"psi is not applied: this latent is already in {space!r}")
        else:
            x, space = seed_latents(g, [state.seed], "z", device=self.device), "z"
        start = space
        edits = []
        for value in state.edits:
            if value.alpha == 0.0:
                continue
            editor, component = self.slider(value.slider, state.class_index)
            if ORDER[editor.space] < ORDER[space] and not (editor.space == "w" and space == "w+"):
                notes.append(f"{value.slider} edits {editor.space!r} and is left out: this latent is in {space!r}")
                continue
            edits.append((editor, component, value.alpha))
        need = max([space, *(e.space for e, _, _ in edits), *(["w"] if state.psi != 1.0 else []),
                    *(["w+"] if state.mix is not None else [])], key=ORDER.__getitem__)
        if need not in self.spaces:
            raise ConfigError(f"state: truncation and style mixing need a style-based generator; "
                              f"{self.trained.config.generator.name!r} has only {self.spaces}")
        for target in ("z", "w", "w+"):
            if ORDER[target] < ORDER[space]:
                continue
            if ORDER[target] > ORDER[need]:
                break
            x, space = lift(g, x, space, target, psi=state.psi), target
            if target == "w+" and state.mix is not None:
                x = self._mix(g, x, state.mix, state.psi)
            for editor, component, alpha in edits:
                if editor.space == target:
                    x = apply_edit(editor, x, alpha, component)
                elif editor.space == "w" and start == "w+":  # an inverted W+ latent: every layer moves alike
                    x = apply_edit(editor, x.flatten(0, 1), alpha, component).view_as(x)
        return x, space, notes

    def _mix(self, g: Any, ws: Tensor, mix: Mix, psi: float) -> Tensor:
        """StyleGAN's style mixing: the chosen layers take the styles of ``mix.seed``'s ``w``."""
        other = lift(g, seed_latents(g, [mix.seed], "z", device=self.device), "z", "w+", psi=psi)
        chosen = torch.zeros(g.num_ws, dtype=torch.bool)
        for name in mix.layers:
            r = layer_range(g, name, field="state.mix.layers")
            chosen[r.start:r.stop] = True
        out = ws.clone()
        out[:, chosen] = other[:, chosen]
        return out

    @torch.no_grad()
    def image(self, state: State) -> tuple[Tensor, str, list[str]]:
        x, space, notes = self.latent(state)
        return render(self.view(state.class_index).module, x, space), space, notes

    @torch.no_grad()
    def render_state(self, state: State) -> dict[str, Any]:
        t0 = time.perf_counter()
        image, space, notes = self.image(state)
        return {"image": data_url(png_bytes(image, nrow=1)), "space": space, "notes": notes,
                "scores": self.scores(image), "ms": round((time.perf_counter() - t0) * 1000, 1)}

    @torch.no_grad()
    def scores(self, image: Tensor) -> list[dict[str, Any]]:
        out = []
        for name, scorer in self.scorers.items():
            if image.shape[1] not in (1, 3):
                break
            values = scorer.score(image)[0].float().cpu().tolist()
            for attribute, value in zip(scorer.attributes, values, strict=True):
                out.append({"scorer": name, "attribute": attribute, "value": value})
        return out

    @torch.no_grad()
    def strip(self, request: StripRequest) -> bytes:
        """The current image at each of ``alphas`` of one slider, the others as they are: the PNG
        ``ganforge edit -n 1 --seed S --alphas ...`` writes for the same direction."""
        self.slider(request.slider, request.state.class_index)  # a clear error before any work
        others = tuple(e for e in request.state.edits if e.slider != request.slider)
        columns = [self.image(attrs.evolve(request.state, edits=(*others, SliderValue(slider=request.slider,
                                                                                       alpha=a))))[0]
                   for a in request.alphas]
        return png_bytes(torch.cat(columns), nrow=len(columns))

    @torch.no_grad()
    def interpolation(self, request: InterpolationRequest) -> tuple[bytes, bytes, list[str]]:
        """The strip (PNG) and its animation (GIF, forth and back) from image ``a`` to image ``b``:
        for two seeds, what ``ganforge interpolate --seeds A,B`` writes."""
        if request.a.class_index != request.b.class_index:
            raise ConfigError("interpolation: both ends must be of one class")
        g = self.view(request.a.class_index).module
        (xa, sa, na), (xb, sb, nb) = self.latent(request.a), self.latent(request.b)
        space = max((request.space, sa, sb), key=ORDER.__getitem__)
        notes = [*na, *nb]
        if space != request.space:
            notes.append(f"interpolated in {space!r}: an end is already there")
        if space not in self.spaces:
            raise ConfigError(f"space: {self.trained.config.generator.name!r} has no {space!r} space; "
                              f"it has {self.spaces}")
        xa, xb = lift(g, xa, sa, space, psi=request.a.psi), lift(g, xb, sb, space, psi=request.b.psi)
        frames = interpolation_strip(g, xa[0], xb[0], request.steps, mode=request.mode, space=space)
        gif = gif_bytes([frames[t][None] for t in forth_and_back(request.steps)], nrow=1,
                        duration_ms=request.frame_ms)
        return png_bytes(frames, nrow=request.steps), gif, notes

    # -- directions

    def slider(self, slider: str, class_index: int | None) -> tuple[Any, int | None]:
        """The fitted editor of a slider id (``KEY`` or ``KEY#component``) and its component."""
        key, _, component = slider.partition("#")
        if key not in self.directions:
            raise ConfigError(f"slider {slider!r}: no such direction; the directions are {sorted(self.directions)}")
        editor = self._editors.get((key, class_index)) or self._load_cached(self.directions[key], class_index)
        if editor is None:
            raise ConfigError(f"slider {slider!r}: the direction is not fitted yet (fit it first)")
        if component:
            count = len(sliders(self.directions[key], editor))
            if not component.isdigit() or int(component) >= count:
                raise ConfigError(f"slider {slider!r}: component {component!r} is not one of 0..{count - 1}")
            return editor, int(component)
        return editor, None

    def _build(self, d: Direction, *, direction: str | None = None) -> Any:
        return build_editor(d.editor, self.manager, direction=direction,
                            params=[f"{k}={value}" for k, value in d.params])

    def _load_cached(self, d: Direction, class_index: int | None) -> Any:
        path = self.direction_file(d.key, class_index)
        if not path.is_file():
            return None
        editor = self._build(d, direction=str(path))
        try:
            editor.fit(self.view(class_index), device=self.device,
                       generator_rng=torch.Generator(self.device).manual_seed(FIT_SEED))
        except ConfigError:  # made for another generator (the run trained on): fitted afresh when asked
            return None
        with self._lock:
            return self._editors.setdefault((d.key, class_index), editor)

    def fit(self, key: str, class_index: int | None) -> tuple[dict[str, Any], bool]:
        """A job fitting direction ``key`` (or loading it from the run's studio folder) and saving
        it there, bound to the generator as ``ganforge edit --save-direction`` does."""
        if key not in self.directions:
            raise ConfigError(f"direction {key!r}: no such direction; the directions are {sorted(self.directions)}")
        d = self.directions[key]
        view = self.view(class_index)

        def work(progress: JobProgress) -> dict[str, Any]:
            editor = self._load_cached(d, class_index)
            if editor is None:
                editor = self._build(d)
                takes = "progress" in inspect.signature(editor.fit).parameters
                editor.fit(view, device=self.device, generator_rng=torch.Generator(self.device).manual_seed(FIT_SEED),
                           **({"progress": progress} if takes else {}))
                path = self.direction_file(key, class_index)
                path.parent.mkdir(parents=True, exist_ok=True)
                editor.save(path, view)
                with self._lock:
                    self._editors[(key, class_index)] = editor
            return self.direction_view(d, class_index)

        job, joined = self.jobs.submit(f"fit:{key}:{class_index}", f"fitting {d.label}", work)
        view_ = self.jobs.get(job.id) or {}
        if joined:
            view_["message"] = f"{d.label} is already being fitted (asked by another tab); following that job"
        return view_, joined

    def direction_file(self, key: str, class_index: int | None) -> Path:
        return self.out / "directions" / self.directions[key].file_name(class_index)

    # -- inversion

    def read_upload(self, data: bytes, name: str) -> tuple[Tensor, list[str]]:
        """An uploaded image as ``[C, H, W]`` in ``[-1, 1]`` at the generator's size (padded or resized
        as the run's data were), with notes on what was done; a clear DataError when it is not one."""
        from ganforge_plugins.datasets.idx import fit_resolution

        if not data:
            raise DataError(f"upload {name!r}: the file is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise DataError(f"upload {name!r}: {len(data):,} bytes, more than the {MAX_UPLOAD_BYTES:,} bytes the "
                            "studio takes")
        c, h, w = self.trained.spec.shape
        try:
            rgb = read_image(io.BytesIO(data), channels=3, max_pixels=MAX_UPLOAD_PIXELS, name=f"upload {name!r}")
        except DataError as exc:
            if "cannot be read" not in str(exc):
                raise
            raise DataError(f"upload {name!r}: not an image the studio can read (PNG, JPEG, BMP, GIF, WebP, TIFF; "
                            f"{len(data):,} bytes)") from None
        notes = []
        if c == 1:
            if not (torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])):
                notes.append("a colour image, read as grey")
            x = read_image(io.BytesIO(data), channels=1, max_pixels=MAX_UPLOAD_PIXELS, name=f"upload {name!r}")
        else:
            x = rgb
        if tuple(x.shape[1:]) != (h, w):
            fit = str(getattr(self.trained.config.data.params, "fit", "resize"))
            if x.shape[1] == x.shape[2] and h == w:
                x = fit_resolution(x[None], h, fit)[0]
                how = "padded" if fit == "pad" and x.shape[1] >= rgb.shape[1] else "resized"
            else:
                x = torch.nn.functional.interpolate(x[None], size=(h, w), mode="bilinear", antialias=True,
                                                    align_corners=False)[0].clamp_(0, 1)
                how = "resized"
            notes.append(f"{how} from {rgb.shape[2]}x{rgb.shape[1]} to {w}x{h}, as the run's data")
        return x * 2 - 1, notes

    def invert(self, data: bytes, name: str, *, method: str, steps: int | None,
               class_index: int | None) -> dict[str, Any]:
        """A job inverting one upload with a registered method (``ganforge invert``'s settings path);
        its result holds the stored latent's id, the reconstruction and its PSNR."""
        image, notes = self.read_upload(data, name)  # refused before a job is made
        view = self.view(class_index)
        space = "w+" if "w+" in self.spaces else "z"
        encoder = self.out / f"encoder-{space}{'' if class_index is None else f'-class{class_index}'}.safetensors"
        flags: dict[str, Any] = {"method": method, "steps": steps, "space": space, "seed": 0, "device": None}
        fields = {f.name for f in attrs.fields(self.manager.get("inversion", method).config)} \
            if method in self.manager.registries["inversion"].names() else set()
        if "encoder" in fields:
            flags.update({"encoder": str(encoder)} if encoder.is_file() else {"save_encoder": str(encoder)})
        if "steps" not in fields:
            flags.pop("steps")
        config: InvertConfig = Invert(InvertConfig()).settings(_namespace(flags), self.manager)

        def work(progress: JobProgress) -> dict[str, Any]:
            encoder.parent.mkdir(parents=True, exist_ok=True)
            inverter = config.method.build()
            takes = "progress" in inspect.signature(inverter.invert).parameters
            latents, record = inverter.invert(view, image[None].to(self.device), space=space,
                                              generator_rng=torch.Generator(self.device).manual_seed(0),
                                              **({"progress": progress} if takes else {}))
            with torch.no_grad():
                recon = render(view.module, latents, space)
            psnr = float(record["psnr"][0])
            latent_id = self.store(Stored(latent=latents.detach().cpu(), space=space, class_index=class_index,
                                          name=name, psnr=psnr))
            return {"latent": latent_id, "name": name, "space": space, "psnr": psnr, "notes": notes,
                    "method": method, "steps": record.get("steps"), "seconds": record.get("seconds"),
                    "target": data_url(png_bytes(image[None], nrow=1)),
                    "reconstruction": data_url(png_bytes(recon, nrow=1))}

        job, _ = self.jobs.submit(f"invert:{uuid.uuid4().hex}", f"inverting {name!r} ({method})", work)
        return self.jobs.get(job.id) or {}

    def store(self, stored: Stored) -> str:
        latent_id = f"latent-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._latents[latent_id] = stored
            while len(self._latents) > MAX_LATENTS:
                self._latents.popitem(last=False)
        return latent_id

    def stored(self, latent_id: str) -> Stored:
        with self._lock:
            stored = self._latents.get(latent_id)
        if stored is None:
            raise ConfigError(f"state.latent: no latent {latent_id!r} on this server (it was restarted, or the "
                              "latent was dropped); invert the image again")
        return stored

    # -- export

    def export_latent(self, state: State) -> tuple[bytes, str, Path]:
        """The state's latent as a ``.npy`` and its side file (naming the generator, the space and the
        class), also saved under the run's studio folder for ``ganforge edit --latents``."""
        x, space, _ = self.latent(state)
        view = self.view(state.class_index)
        meta = {"class": state.class_index, "source": state.latent or f"seed {state.seed}",
                "state": _plain(state)}
        stem = f"latent-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        path = save_latent_array(self.out / "exports" / f"{stem}.npy", x, generator=view, space=space, meta=meta)
        return latent_array_bytes(x), latent_side(view, space=space, meta=meta), path

    def close(self) -> None:
        self.jobs.close()


def sliders(d: Direction, editor: Any) -> list[dict[str, Any]]:
    """The sliders of a fitted editor: one per principal component (with its share of the variance)
    for an editor with components, else one."""
    components = getattr(editor, "components", None)
    if isinstance(components, Tensor) and "component" in inspect.signature(editor.edit).parameters:
        ratio = getattr(editor, "explained_variance_ratio", None)
        return [{"id": f"{d.key}#{k}", "label": f"PC{k}", "space": editor.space,
                 "variance": None if ratio is None else float(ratio[k])} for k in range(components.shape[0])]
    return [{"id": d.key, "label": d.label, "space": editor.space}]


def apply_edit(editor: Any, x: Tensor, alpha: float, component: int | None) -> Tensor:
    out: Tensor = editor.edit(x, alpha) if component is None else editor.edit(x, alpha, component=component)
    return out


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _namespace(values: dict[str, Any]) -> Any:
    import argparse

    return argparse.Namespace(**values)


def _plain(state: State) -> dict[str, Any]:
    return attrs.asdict(state, recurse=True, value_serializer=lambda _i, _a, value: list(value)
                        if isinstance(value, tuple) else value)
