"""The plan: every cell a session asks for, and what each still needs given what the results store holds."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import datasets as ds
from bench.results import Cell, CellState


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: run the method on a cell ("run"), or compute metrics it lacks from its saved SR output
    ("metrics"). Handed to any executor as is."""

    cell: Cell
    image: ds.DatasetImage
    action: str = "run"
    metrics: tuple[str, ...] = ()  # the metrics to compute
    output: str = ""  # "metrics": the saved SR output (relative to the run folder)


def make_plan(session) -> list[WorkItem]:
    """Image-major order (then degradation, scale, method), so each image is loaded once; unsupported (method, scale) pairs are left out."""
    plan = []
    for image in session.dataset.images:
        for degradation in session.degradations:
            for scale in session.scales:
                for name, method in session.methods.items():
                    if method.supports(scale):
                        cell = Cell(session.dataset.name, image.category, image.name, image.content_id,
                                    degradation.id, int(scale), name, session.config_ids[name])
                        plan.append(WorkItem(cell, image, "run", session.metrics))
    return plan


@dataclass
class Pending:
    todo: list[WorkItem]
    n_done: int  # cells complete with every requested metric
    retry: set[tuple] = field(default_factory=set)  # failed or unreadable cells: removed, then run again
    superseded: set[tuple] = field(default_factory=set)  # cells of an image whose content has changed since


def pending_work(plan: list[WorkItem], states: dict[tuple, CellState], out: Path,
                 images: tuple[ds.DatasetImage, ...] | None = None) -> Pending:
    """What is left: new cells run; failed ones run again; finished ones lacking a requested metric get just that
    metric from their saved output (or run again when the output is gone). Cells of this dataset whose image is no
    longer in it as it is now (`images`: the whole dataset, not just the images selected; default: the plan's) are
    superseded (moved out of the table): the image's content changed, or it was deleted or renamed."""
    todo, done, retry = [], 0, set()
    for item in plan:
        state = states.get(item.cell.key)
        if state is None:
            todo.append(item)
            continue
        if state.status != "ok":
            retry.add(item.cell.key)
            todo.append(item)
            continue
        missing = tuple(m for m in item.metrics if m not in state.metrics)
        if not missing:
            done += 1
        elif state.output and (out / state.output).is_file():
            todo.append(WorkItem(item.cell, item.image, "metrics", missing, state.output))
        else:
            retry.add(item.cell.key)
            todo.append(item)
    datasets = {i.cell.dataset for i in plan}
    current = ({im.name: im.content_id for im in images} if images is not None
               else {i.cell.image: i.cell.image_sha for i in plan})
    superseded = {key for key in states if key[0] in datasets and current.get(key[1]) != key[2]}
    return Pending(todo=todo, n_done=done, retry=retry, superseded=superseded)


def find_renames(states: dict[tuple, CellState], dataset: str, images: tuple[ds.DatasetImage, ...]
                 ) -> dict[tuple, tuple[str, str]]:
    """Cells of an image that is gone by its old name while an image with the same content (content_id) is there
    under a new one: old cell key -> (new name, new category). Such a cell is the same measurement (its LR image
    is drawn from the content, not the name), so it is kept under the new name, not computed again. An old name
    still in the dataset is not a rename (two images may share content)."""
    names = {im.name for im in images}
    by_content: dict[str, list[ds.DatasetImage]] = {}
    for im in images:
        by_content.setdefault(im.content_id, []).append(im)
    renames, claimed = {}, set()
    for key in sorted(states):
        if key[0] != dataset or key[1] in names or key[2] not in by_content:
            continue
        for im in by_content[key[2]]:
            new_key = (key[0], im.name) + tuple(key[2:])
            if new_key not in states and new_key not in claimed:
                renames[key] = (im.name, im.category)
                claimed.add(new_key)
                break
    return renames


@dataclass(frozen=True)
class WorkBatch:
    """The unit of work handed to a worker: one item, or up to K "run" items of one batchable method and config
    (any images, scales, degradations), computed in one call and recorded cell by cell when the call returns."""

    items: tuple[WorkItem, ...]

    @property
    def key(self) -> tuple:
        return tuple(i.cell.key for i in self.items)

    @property
    def slug(self) -> str:
        first = self.items[0].cell.slug
        return first if len(self.items) == 1 else f"{first} (+{len(self.items) - 1} in its batch)"

    def __len__(self) -> int:
        return len(self.items)


def make_batches(todo: list[WorkItem], size: int, batchable: set[str]) -> list[WorkBatch]:
    """Group the "run" items of batchable methods by (method, config) into batches of up to `size`, in plan order
    (a batch sits where its first item was); everything else stays a batch of one."""
    if size <= 1:
        return [WorkBatch((item,)) for item in todo]
    slots: list[list[WorkItem]] = []
    open_by_key: dict[tuple[str, str], list[WorkItem]] = {}
    for item in todo:
        if item.action != "run" or item.cell.method not in batchable:
            slots.append([item])
            continue
        key = (item.cell.method, item.cell.config_id)
        group = open_by_key.get(key)
        if group is None or len(group) >= size:
            group = open_by_key[key] = []
            slots.append(group)
        group.append(item)
    return [WorkBatch(tuple(group)) for group in slots]
