"""Model files as content-addressed parts: a safetensors or GGUF file is read as a layout (its
header, its tensors and the gaps between them, in file order); every tensor becomes a tensor
atom whose address is the SHA-256 of its canonical encoding (tensors.py), and a manifest that
lists the parts in order is the model version's identity, from which the file reassembles
byte for byte. Pure: the callers read the bytes and store the atoms."""
