using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using OnionDrop.Sealing.Interop;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// Reads a sealed blob's header, unwraps the stream key with the journalist's key, and presents the verified
/// plaintext as a read-only stream. Every failure is a <see cref="SealedFormatException"/> with a one-line
/// reason. Read returns 0 only once the FINAL chunk has verified and nothing follows it.
/// </summary>
/// <remarks>
/// For a blob of <see cref="DecryptAheadFrom"/> or more, decryption runs ahead on a thread of its own, so
/// that it uses one core while the reader (the opener: hashing and writing files) uses the other; a smaller
/// one is decrypted on the reader's thread, block by block as it reads (many small blobs are spread over the
/// cores by opening several at once instead). The two hand plaintext over in <see cref="SlotCount"/> pooled
/// slots of <see cref="ChunksPerSlot"/> chunks: memory stays at a few MiB whatever the blob's size. A chunk's
/// plaintext reaches the reader only once it has verified; a failure reaches it exactly where it occurred in
/// the stream, after the verified bytes before it, so the reasons are those a one-thread reader would give.
/// </remarks>
internal sealed class SealedStreamReader : Stream
{
    /// <summary>
    /// Chunks read and decrypted at a time. One (64 KiB): the source block, the slot being decrypted and the one
    /// being hashed and written then stay within a core's 1 MiB L2 cache; with 256 KiB blocks libsodium ran
    /// about a third slower than on the same bytes in a hot buffer (measured on the 2-core test machine).
    /// </summary>
    internal const int ChunksPerSlot = 1;
    /// <summary>Slots between the two threads: enough (1 MiB) to ride out either one's hiccups.</summary>
    private const int SlotCount = 16;
    private const int BlockSize = ChunksPerSlot * SealedFormat.CipherChunkSize;

    private sealed class Slot
    {
        public readonly byte[] Plain = Buffers.Rent(ChunksPerSlot * SealedFormat.ChunkSize);
        public int Length;
        /// <summary>How much of <see cref="Plain"/> decryption may have written: wiped before the buffer goes back to the pool.</summary>
        public int Used;
        public bool Final;
        /// <summary>Set when the stream failed right after this slot's <see cref="Length"/> verified bytes.</summary>
        public ExceptionDispatchInfo? Error;
    }

    private readonly Stream _source;
    private readonly SecretStream _stream;
    private readonly byte[] _header;
    private readonly IProgress<long>? _progress;
    private readonly Slot[] _slots;
    private readonly byte[] _cipher = Buffers.Rent(BlockSize);

    /// <summary>
    /// The slots' and blocks' own pool, shared by all threads: ArrayPool.Shared keeps returned buffers per
    /// thread first, so buffers returned by a short-lived thread (a large blob's decrypting one) were lost and
    /// the next blob allocated (and faulted in) fresh ones.
    /// </summary>
    private static readonly ArrayPool<byte> Buffers = ArrayPool<byte>.Create(maxArrayLength: BlockSize, maxArraysPerBucket: 64);
    // The hand-over: counts of filled and free slots under one lock. Monitor.Wait blocks at once rather than
    // spinning, which on two busy cores would take time from the very thread being waited for.
    private readonly object _gate = new();
    private int _filled, _free = SlotCount;
    private bool _stopping;
    private readonly Thread? _decryptor;  // null for a small blob: decrypted on the reader's thread as it reads
    private long _chunk;        // chunks decrypted so far (by one thread at a time)
    private long _consumed;     // ciphertext bytes read
    private Slot? _current;     // the reader's slot
    private int _pos;           // the reader's position in it
    private int _taken;         // slots the reader has taken so far

    public SealedStreamReader(Stream source, JournalistKey key, IProgress<long>? progress = null)
    {
        _source = source;
        _progress = progress;
        _header = ReadHeader(source, out var recipients);
        var streamKey = UnwrapStreamKey(_header, recipients, key);
        try { _stream = SecretStream.InitPull(streamKey, _header.AsSpan(_header.Length - SecretStream.HeaderBytes)); }
        finally { CryptographicOperations.ZeroMemory(streamKey); }
        _consumed = _header.Length;
        var ahead = WorthAThread(source);
        _slots = [.. Enumerable.Range(0, ahead ? SlotCount : 1).Select(_ => new Slot())];
        if (!ahead) return;
        _decryptor = new Thread(DecryptAhead) { IsBackground = true, Name = "oniondrop open: decrypt" };
        _decryptor.Start();
    }

    /// <summary>Below this much ciphertext a second thread costs more than it saves: the blob is decrypted inline.</summary>
    internal const long DecryptAheadFrom = 2L << 20;

    private static bool WorthAThread(Stream source)
    {
        try { return !source.CanSeek || source.Length - source.Position >= DecryptAheadFrom; }
        catch (NotSupportedException) { return true; }
    }

    private static byte[] ReadHeader(Stream source, out int recipients)
    {
        Span<byte> pre = stackalloc byte[SealedFormat.PreambleLength + SealedFormat.RecipientCountLength];
        var n = source.ReadAtLeast(pre, pre.Length, throwOnEndOfStream: false);
        if (n == 0) throw new SealedFormatException("empty file", damaged: true);
        var magicSeen = Math.Min(n, SealedFormat.Magic.Length);
        if (!pre[..magicSeen].SequenceEqual(SealedFormat.Magic[..magicSeen]))
            throw new SealedFormatException("not an OnionDrop sealed blob (bad magic)");
        if (n > 6 && pre[6] != SealedFormat.Version)
            throw new SealedFormatException($"unknown format version {pre[6]} (this oniondrop reads version {SealedFormat.Version})");
        if (n < pre.Length) throw new SealedFormatException("truncated header", damaged: true);
        if (pre[7] != 0) throw new SealedFormatException($"unknown format flags 0x{pre[7]:x2}");
        recipients = BinaryPrimitives.ReadUInt16LittleEndian(pre[8..]);
        if (recipients is 0 or > SealedFormat.MaxRecipients)
            throw new SealedFormatException($"invalid recipient count {recipients}", damaged: true);

        var header = new byte[SealedFormat.HeaderLength(recipients)];
        pre.CopyTo(header);
        if (source.ReadAtLeast(header.AsSpan(pre.Length), header.Length - pre.Length, throwOnEndOfStream: false) < header.Length - pre.Length)
            throw new SealedFormatException("truncated header", damaged: true);
        return header;
    }

    private static byte[] UnwrapStreamKey(byte[] header, int recipients, JournalistKey key)
    {
        var keyId = key.PublicKey.KeyId.Span;
        var publicKey = key.PublicKey.Bytes.ToArray();
        var secret = key.SecretBytes.ToArray();
        var found = false;
        try
        {
            for (var i = 0; i < recipients; i++)
            {
                var stanza = header.AsSpan(SealedFormat.PreambleLength + SealedFormat.RecipientCountLength + i * SealedFormat.StanzaLength, SealedFormat.StanzaLength);
                if (!stanza[..SealedFormat.KeyIdLength].SequenceEqual(keyId)) continue;
                found = true;
                try
                {
                    var streamKey = SealedPublicKeyBox.Open(stanza[SealedFormat.KeyIdLength..].ToArray(), secret, publicKey);
                    if (streamKey.Length == SecretStream.KeyBytes) return streamKey;
                    CryptographicOperations.ZeroMemory(streamKey);
                }
                catch (CryptographicException) { }
            }
        }
        finally { CryptographicOperations.ZeroMemory(secret); }
        throw found
            // A stanza with this key's id that does not open. Never the key's fault: a key file's secret is checked against
            // its public key as it is read, and the id is derived from that. So its bytes were altered (or are another
            // key's, this key's id written over): said in the journalist's words, the copy at fault.
            ? new SealedFormatException($"sealed to this key ({key.PublicKey.ToString()[..12]}...), but the part only this key unlocks " +
                                        "has been altered (the key is fine)", damaged: true)
            // Said in the journalist's words, with the usual cause: a key missing from the server's Recipients.
            : new SealedFormatException($"sealed to {recipients} other key{(recipients == 1 ? "" : "s")}, not to this one ({key.PublicKey.ToString()[..12]}...): " +
              "if it should be yours, ask the operator whether the server's Recipients list your public key " +
              "(a submission is sealed only to the keys listed when it arrived)");
    }

    public override int Read(Span<byte> buffer)
    {
        var verified = ReadSpan(buffer.Length);
        verified.CopyTo(buffer);
        return verified.Length;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    // Record types are read one byte at a time: without this, Stream.ReadByte allocates per call.
    public override int ReadByte()
    {
        var one = ReadSpan(1);
        return one.IsEmpty ? -1 : one[0];
    }

    /// <summary>
    /// Up to <paramref name="max"/> verified plaintext bytes, without a copy: valid until the next read. Empty
    /// only once the FINAL chunk has verified and nothing follows it; throws where the stream fails.
    /// </summary>
    internal ReadOnlySpan<byte> ReadSpan(int max)
    {
        if (max <= 0) return default;
        while (_current is null || _pos == _current.Length)
        {
            if (_current is not null)
            {
                _current.Error?.Throw();
                if (_current.Final) return default;
                _current = null;
                if (_decryptor is not null) lock (_gate) { _free++; Monitor.PulseAll(_gate); }
            }
            if (_decryptor is null) Fill(_current = _slots[0]);
            else
            {
                lock (_gate)
                {
                    while (_filled == 0) Monitor.Wait(_gate);
                    _filled--;
                }
                _current = _slots[_taken++ % SlotCount];
            }
            _pos = 0;
        }
        var n = Math.Min(max, _current.Length - _pos);
        var span = _current.Plain.AsSpan(_pos, n);
        _pos += n;
        return span;
    }

    /// <summary>
    /// The decrypting thread: fills free slots in order and hands them over, until FINAL, the first failure
    /// (handed over with the slot it happened in), or the reader's disposal.
    /// </summary>
    private void DecryptAhead()
    {
        for (var index = 0; ; index++)
        {
            lock (_gate)
            {
                while (_free == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return; // the reader stopped early (a refusal, or a blob it read in part)
                _free--;
            }
            var more = Fill(_slots[index % SlotCount]);
            HandOver();
            if (!more) return;
        }
    }

    /// <summary>
    /// Reads the next block of <see cref="ChunksPerSlot"/> ciphertext chunks, verifies and decrypts each into
    /// <paramref name="slot"/>. False when nothing follows: FINAL verified, or a failure recorded in the slot
    /// after the plaintext verified before it.
    /// </summary>
    private bool Fill(Slot slot)
    {
        (slot.Length, slot.Final, slot.Error) = (0, false, null);
        Span<byte> one = stackalloc byte[1];
        try
        {
            var n = _source.ReadAtLeast(_cipher.AsSpan(0, BlockSize), BlockSize, throwOnEndOfStream: false);
            for (var offset = 0; offset < n || n < BlockSize;)
            {
                // Chunks are counted: every one is CipherChunkSize bytes but the last, which the file's end cuts short.
                var length = Math.Min(SealedFormat.CipherChunkSize, n - offset);
                _consumed += length;
                slot.Used = Math.Max(slot.Used, slot.Length + Math.Max(0, length - SecretStream.ABytes));
                var tag = PullChunk(_cipher.AsSpan(offset, length), slot.Plain.AsSpan(slot.Length), ++_chunk, out var written);
                _progress?.Report(_consumed);
                slot.Length += written;
                offset += length;
                if (tag == SecretStream.TagFinal)
                {
                    if (offset < n || (n == BlockSize && _source.Read(one) != 0))
                        throw new SealedFormatException($"trailing data after the final chunk ({_chunk})", damaged: true);
                    slot.Final = true;
                    return false;
                }
            }
            return true;
        }
        catch (Exception e)
        {
            slot.Error = ExceptionDispatchInfo.Capture(e);
            return false;
        }
    }

    private void HandOver()
    {
        lock (_gate) { _filled++; Monitor.PulseAll(_gate); }
    }

    /// <summary>Verifies and decrypts chunk number <paramref name="number"/>; every failure is the spec's one-line reason.</summary>
    private byte PullChunk(ReadOnlySpan<byte> cipher, Span<byte> plain, long number, out int written)
    {
        var n = cipher.Length;
        if (n == 0)
            throw new SealedFormatException(number == 1
                ? "truncated: no chunks after the header"
                : $"truncated: the stream ends after chunk {number - 1} without its final chunk", damaged: true);
        if (n < SecretStream.ABytes)
            throw new SealedFormatException($"truncated mid-chunk: chunk {number} has only {n} bytes", damaged: true);
        var ad = number == 1 ? _header : [];
        if (!_stream.TryPull(cipher, plain, ad, out written, out var tag))
            throw new SealedFormatException(
                number == 1 ? "header or first chunk fails authentication: corrupted or tampered"
                // A short chunk is the end of the file: a cut chunk, or a short final chunk with bytes appended.
                : n < SealedFormat.CipherChunkSize ? $"chunk {number} (the last) fails authentication: truncated mid-chunk, corrupted, or followed by trailing data"
                : $"chunk {number} fails authentication: corrupted, reordered or from another blob", damaged: true);
        if (tag == SecretStream.TagFinal)
        {
            if (written == 0) throw new SealedFormatException("the final chunk is empty (not written by an OnionDrop sealer)");
        }
        else if (tag != SecretStream.TagMessage)
            throw new SealedFormatException($"chunk {number} has an unexpected tag {tag}");
        else if (n < SealedFormat.CipherChunkSize)
            throw new SealedFormatException($"truncated: the stream ends after chunk {number} without its final chunk", damaged: true);
        return tag;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // The decrypting thread must be gone before its state and slots are wiped and returned.
            if (_decryptor is not null)
            {
                lock (_gate) { _stopping = true; Monitor.PulseAll(_gate); }
                _decryptor.Join();
            }
            _stream.Dispose();
            Buffers.Return(_cipher); // ciphertext: nothing to wipe
            foreach (var slot in _slots)
            {
                CryptographicOperations.ZeroMemory(slot.Plain.AsSpan(0, slot.Used));
                Buffers.Return(slot.Plain);
            }
        }
        base.Dispose(disposing);
    }
}
