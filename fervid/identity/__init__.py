"""Who is who across a whole video: a face embedding for identity and the people it finds.

Its parts: :mod:`~fervid.identity.distance` (distances read against a cohort, the
probability of one person), :mod:`~fervid.identity.embedder` (``FaceEmbedder``),
:mod:`~fervid.identity.tracker` (``PersonTracker``), :mod:`~fervid.identity.grouping`
(``cluster_tracks``, ``join_summaries``) and :mod:`~fervid.identity.store` (the identity
file kept beside a table, ``VIDEO.fervid.identity.json``).

- :class:`FaceEmbedder`: dlib's ResNet face descriptor (128 numbers per face; 99.38% on LFW
  by its authors), its weights read from the ``face-recognition-models`` package: installed
  by pip, nothing downloaded at run time. Faces are aligned by dlib's 5-point landmark model
  inside the detector's box (the prebuilt ``dlib-bin`` wheel); the network runs in PyTorch
  (:mod:`fervid._dlib_resnet`: dlib's descriptors, in batches, on the model's device).
- :class:`PersonTracker`: ``update(faces, image, t) -> (persons, confidences)`` for each
  analysed frame. It keeps a few embeddings per track (taken at the track's birth, then every
  ``interval`` seconds and when the track is seen again after a gap, at most ``max_samples``,
  only for faces large and sharp enough), the pairs of tracks seen in the same frame (never one
  person), and gives each new track the person it matches among those not in view, or a new
  person. It checks each track's face along its length: a face that became someone else's
  splits the track there. Its state is plain data (``--resume``).
- :func:`cluster_tracks`: the whole-video pass: tracks merged into people by average-linkage
  on their embeddings, never two tracks seen in the same frame, stopping at the distance
  threshold or, when the number of people is known, at that number; then mutual nearest
  groups joined (two groups never seen together, each the other's nearest, closer than a
  looser distance); people numbered in order
  of first appearance; each track's confidence from the distance to its own people or to the
  nearest other.

Distances are read against a cohort of other people's faces (:func:`cohort_scale`): where
faces crowd, as look-alikes do for the descriptor, they grow. The distance threshold and the
confidence curve were chosen by measurement on pairs of photos of the same and of different
people, the join of mutual nearest groups on simulated videos (``bench/identity.py``,
docs/identity.md).
"""
