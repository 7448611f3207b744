using System.Collections;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Models;

/// <summary>
/// A connection's features in one small array searched by reference. A connection carries about a dozen
/// (ours, Kestrel's and the gateway middleware's), set once and read a few times per connection; the stock
/// <see cref="FeatureCollection"/> keeps them in a <see cref="Dictionary{TKey,TValue}"/> that grows to 17
/// buckets and entries — about 600 bytes per connection, an eighth of an idle connection's whole managed
/// heap. This array costs 16 bytes a feature.
/// </summary>
internal sealed class CompactFeatureCollection : IFeatureCollection
{
    private KeyValuePair<Type, object>[] _features = new KeyValuePair<Type, object>[InitialCapacity];
    private int _count;

    /// <summary>Room for the transport's five, Kestrel's five and the middleware's two without growing.</summary>
    private const int InitialCapacity = 12;

    public bool IsReadOnly => false;

    public int Revision { get; private set; }

    public object? this[Type key]
    {
        get
        {
            var index = IndexOf(key);
            return index < 0 ? null : _features[index].Value;
        }
        set
        {
            ArgumentNullException.ThrowIfNull(key);
            var index = IndexOf(key);
            if (value is null)
            {
                if (index >= 0)
                {
                    _count--;
                    _features[index] = _features[_count];
                    _features[_count] = default;
                }
            }
            else if (index >= 0)
            {
                _features[index] = new(key, value);
            }
            else
            {
                if (_count == _features.Length)
                {
                    Array.Resize(ref _features, _count * 2);
                }

                _features[_count++] = new(key, value);
            }

            Revision++;
        }
    }

    public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];

    public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return _features[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private int IndexOf(Type key)
    {
        for (var i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_features[i].Key, key))
            {
                return i;
            }
        }

        return -1;
    }
}
