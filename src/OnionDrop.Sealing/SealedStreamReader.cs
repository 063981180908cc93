using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using OnionDrop.Sealing.Interop;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// Reads a sealed blob's header, unwraps the stream key with the journalist's key, and presents the verified
/// plaintext as a read-only stream. Every failure is a <see cref="SealedFormatException"/> with a one-line
/// reason. Read returns 0 only once the FINAL chunk has verified and nothing follows it.
/// </summary>
internal sealed class SealedStreamReader : Stream
{
    private readonly Stream _source;
    private readonly SecretStream _stream;
    private readonly byte[] _header;
    private readonly byte[] _cipher = ArrayPool<byte>.Shared.Rent(SealedFormat.CipherChunkSize);
    private readonly byte[] _plain = ArrayPool<byte>.Shared.Rent(SealedFormat.ChunkSize);
    private readonly IProgress<long>? _progress;
    private int _pos, _len;
    private long _chunk;        // chunks verified so far
    private long _consumed;     // ciphertext bytes read
    private bool _final;

    public SealedStreamReader(Stream source, JournalistKey key, IProgress<long>? progress = null)
    {
        _source = source;
        _progress = progress;
        _header = ReadHeader(source, out var recipients);
        _consumed = _header.Length;
        var streamKey = UnwrapStreamKey(_header, recipients, key);
        try { _stream = SecretStream.InitPull(streamKey, _header.AsSpan(_header.Length - SecretStream.HeaderBytes)); }
        finally { CryptographicOperations.ZeroMemory(streamKey); }
    }

    private static byte[] ReadHeader(Stream source, out int recipients)
    {
        Span<byte> pre = stackalloc byte[SealedFormat.PreambleLength + SealedFormat.RecipientCountLength];
        var n = source.ReadAtLeast(pre, pre.Length, throwOnEndOfStream: false);
        if (n == 0) throw new SealedFormatException("empty file");
        var magicSeen = Math.Min(n, SealedFormat.Magic.Length);
        if (!pre[..magicSeen].SequenceEqual(SealedFormat.Magic[..magicSeen]))
            throw new SealedFormatException("not an OnionDrop sealed blob (bad magic)");
        if (n > 6 && pre[6] != SealedFormat.Version)
            throw new SealedFormatException($"unknown format version {pre[6]} (this oniondrop reads version {SealedFormat.Version})");
        if (n < pre.Length) throw new SealedFormatException("truncated header");
        if (pre[7] != 0) throw new SealedFormatException($"unknown format flags 0x{pre[7]:x2}");
        recipients = BinaryPrimitives.ReadUInt16LittleEndian(pre[8..]);
        if (recipients is 0 or > SealedFormat.MaxRecipients)
            throw new SealedFormatException($"invalid recipient count {recipients}");

        var header = new byte[SealedFormat.HeaderLength(recipients)];
        pre.CopyTo(header);
        if (source.ReadAtLeast(header.AsSpan(pre.Length), header.Length - pre.Length, throwOnEndOfStream: false) < header.Length - pre.Length)
            throw new SealedFormatException("truncated header");
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
        throw new SealedFormatException(found
            ? "the recipient stanza for this key does not decrypt: header corrupted"
            : $"not sealed to this key ({key.PublicKey.ToString()[..12]}...): none of its {recipients} recipient stanza(s) is for it");
    }

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        if (_pos == _len)
        {
            if (_final) return 0;
            NextChunk();
        }
        var n = Math.Min(buffer.Length, _len - _pos);
        _plain.AsSpan(_pos, n).CopyTo(buffer);
        _pos += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    // Record types are read one byte at a time: without this, Stream.ReadByte allocates per call.
    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    private void NextChunk()
    {
        {
            var n = _source.ReadAtLeast(_cipher.AsSpan(0, SealedFormat.CipherChunkSize), SealedFormat.CipherChunkSize, throwOnEndOfStream: false);
            var number = _chunk + 1;
            if (n == 0)
                throw new SealedFormatException(_chunk == 0
                    ? "truncated: no chunks after the header"
                    : $"truncated: the stream ends after chunk {_chunk} without its final chunk");
            _consumed += n;
            _progress?.Report(_consumed);
            if (n < SecretStream.ABytes)
                throw new SealedFormatException($"truncated mid-chunk: chunk {number} has only {n} bytes");
            var ad = _chunk == 0 ? _header : [];
            if (!_stream.TryPull(_cipher.AsSpan(0, n), _plain, ad, out _len, out var tag))
                throw new SealedFormatException(
                    _chunk == 0 ? "header or first chunk fails authentication: corrupted or tampered"
                    // A short read is the end of the file: a cut chunk, or a short final chunk with bytes appended.
                    : n < SealedFormat.CipherChunkSize ? $"chunk {number} (the last) fails authentication: truncated mid-chunk, corrupted, or followed by trailing data"
                    : $"chunk {number} fails authentication: corrupted, reordered or from another blob");
            _chunk = number;
            _pos = 0;
            if (tag == SecretStream.TagFinal)
            {
                if (_len == 0) throw new SealedFormatException("the final chunk is empty (not written by an OnionDrop sealer)");
                Span<byte> one = stackalloc byte[1];
                if (_source.Read(one) != 0) throw new SealedFormatException($"trailing data after the final chunk ({number})");
                _final = true;
            }
            else if (tag != SecretStream.TagMessage)
                throw new SealedFormatException($"chunk {number} has an unexpected tag {tag}");
            else if (n < SealedFormat.CipherChunkSize)
                throw new SealedFormatException($"truncated: the stream ends after chunk {number} without its final chunk");
        }
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
            _stream.Dispose();
            ArrayPool<byte>.Shared.Return(_cipher, clearArray: true);
            ArrayPool<byte>.Shared.Return(_plain, clearArray: true);
        }
        base.Dispose(disposing);
    }
}
