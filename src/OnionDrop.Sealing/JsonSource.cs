using System.Text.Json;

namespace OnionDrop.Sealing;

/// <summary>
/// JSON read from a stream a buffer at a time: <see cref="Utf8JsonReader"/> needs each token whole, not the document,
/// so the buffer grows only to the longest token. A manifest of 64 MiB of names read whole, then parsed into strings,
/// took several times its size.
/// </summary>
/// <param name="length">the bytes of <paramref name="stream"/> that are the document</param>
internal sealed class JsonSource(Stream stream, long length)
{
    private long _left = length;
    private byte[] _buffer = new byte[Math.Clamp(length, 1, 64 * 1024)];
    private int _start, _end;   // not yet given to a reader: _buffer[_start.._end]
    private byte[] _scratch = [];

    /// <summary>A reader for <see cref="Read"/>, which fills it.</summary>
    public static Utf8JsonReader Start() => new([], isFinalBlock: false, default);

    /// <summary>Moves <paramref name="reader"/> to the next token, reading more of the stream when it needs it.</summary>
    /// <returns>false at the end of the document</returns>
    /// <exception cref="JsonException">not JSON</exception>
    /// <exception cref="EndOfStreamException">the stream ends before <c>length</c> bytes</exception>
    public bool Read(ref Utf8JsonReader reader)
    {
        while (!reader.Read())
        {
            if (reader.IsFinalBlock) return false;
            _start += (int)reader.BytesConsumed;
            Fill();
            reader = new Utf8JsonReader(_buffer.AsSpan(_start, _end - _start), isFinalBlock: _left == 0, reader.CurrentState);
        }
        return true;
    }

    private void Fill()
    {
        var unread = _end - _start;
        // A token longer than the buffer: doubled, but one of over 1 MiB (no name is; a message can be) gets the rest
        // of the document at once. Doubled all the way, a 48 MB message left as much again in garbage.
        if (unread == _buffer.Length) Array.Resize(ref _buffer, (int)Math.Min(_buffer.Length < 1 << 20 ? 2L * _buffer.Length : long.MaxValue, unread + _left));
        else _buffer.AsSpan(_start, unread).CopyTo(_buffer);
        (_start, _end) = (0, unread);
        if (_left == 0) return; // the reader, now told the input is final, says what is wrong with it
        // Filled, not read once: the reader scans an unfinished token again from its start at each call, so a token
        // of 48 MB (a message of escapes) given 64 KiB at a time took 24 s to read.
        var into = _buffer.AsSpan(_end, (int)Math.Min(_buffer.Length - _end, _left));
        if (stream.ReadAtLeast(into, into.Length, throwOnEndOfStream: false) < into.Length) throw new EndOfStreamException();
        _end += into.Length;
        _left -= into.Length;
    }

    /// <summary>The current string (or property name) as UTF-8, unescaped and checked: valid until the next read.</summary>
    /// <exception cref="InvalidOperationException">not valid UTF-8, or a lone surrogate escaped</exception>
    public ReadOnlySpan<byte> Utf8(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            if (!System.Text.Unicode.Utf8.IsValid(reader.ValueSpan)) throw new InvalidOperationException("not UTF-8");
            return reader.ValueSpan;
        }
        // CopyString wants a byte to spare after an escape; the escaped length, which always does, if ever more.
        var length = UnescapedLength(reader.ValueSpan) + 1;
        if (_scratch.Length < length) _scratch = new byte[Math.Max(length, Math.Min(2 * _scratch.Length, 64 * 1024))];
        try { return _scratch.AsSpan(0, reader.CopyString(_scratch)); }
        catch (ArgumentException) when (_scratch.Length < reader.ValueSpan.Length)
        {
            _scratch = new byte[reader.ValueSpan.Length];
            return _scratch.AsSpan(0, reader.CopyString(_scratch));
        }
    }

    /// <summary>
    /// At least the length of <paramref name="escaped"/> (a string the reader has checked) unescaped: a message of 8 Mi
    /// "\u0001" is 48 MB escaped and 8 MB not, and a buffer of the escaped length doubled what open held for it.
    /// </summary>
    private static int UnescapedLength(ReadOnlySpan<byte> escaped)
    {
        var length = escaped.Length;
        for (int i; (i = escaped.IndexOf((byte)'\\')) >= 0;)
        {
            if (escaped[i + 1] != 'u')
            {
                length -= 1;   // \n: 2 bytes for 1
                escaped = escaped[(i + 2)..];
                continue;
            }
            // \uXXXX: 6 bytes for the UTF-8 of one UTF-16 unit (a surrogate's half of 4 bytes counted as 3)
            var unit = int.Parse(escaped.Slice(i + 2, 4), System.Globalization.NumberStyles.AllowHexSpecifier);
            length -= 6 - (unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3);
            escaped = escaped[(i + 6)..];
        }
        return length;
    }
}
